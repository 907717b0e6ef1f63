"""``--model unet-watershed`` of the instance task: targets from COCO instances, predict_batch, and
(slow) train / evaluate / predict from the command line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from foveal.errors import ConfigError
from foveal.instance.label_maps import label_maps_to_coco, write_coco, write_label_map
from foveal.instance.watershed import instance_targets
from tests.instance.conftest import disc_labels

SIZE = 64


def _labels(i: int) -> np.ndarray:
    return disc_labels(i, SIZE)


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("discs")
    (root / "images").mkdir()
    for i in range(10):
        labels = _labels(i)
        image = np.where(labels > 0, 200, 40).astype(np.uint8)
        image[instance_targets(labels, 1) == 2] = 90  # visible contours
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        write_label_map(root / "instances" / f"{i}.png", labels)
    return write_coco(label_maps_to_coco(root, class_names=["disc"]), root / "annotations" / "discs.json")


def test_targets_and_predict_batch(coco_file):
    from foveal.instance.data import read_instances
    from foveal.instance.watershed_family import TargetImages, UNetWatershedFamily

    data = read_instances(coco_file)
    pairs = TargetImages(data, 2)
    order = [int(str(p).rsplit("/", 1)[-1].split(".")[0]) for p in data.paths]
    for index, i in enumerate(order[:3]):
        assert np.array_equal(pairs.targets(index), instance_targets(_labels(i), 2))

    class Perfect:  # the "network" answers with the targets of the images it is given
        def predict_on_batch(self, images):
            return np.stack([np.eye(3, dtype=np.float32)[pairs.targets(int(k))] for k in images[:, 0, 0, 0]])

    card = SimpleNamespace(training={"watershed": {"min_area": 8}, "score_threshold": 0.25, "max_detections": 2})
    images = np.zeros((2, SIZE, SIZE, 1), np.float32)
    images[1] = 1  # image index 1
    found = UNetWatershedFamily().predict_batch(Perfect(), card, images, [(SIZE, SIZE), (SIZE * 2, SIZE * 2)])
    assert [len(f) for f in found] == [2, 2]  # max_detections 2 of 3 discs
    assert np.all(found[0].scores[:-1] >= found[0].scores[1:]) and (found[0].classes == 0).all()
    assert found[1].rles[0]["size"] == [SIZE * 2, SIZE * 2]  # stretched back to the image's size
    from pycocotools import mask as mask_utils

    rle = found[0].rles[0]
    x, y, w, h = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})
    assert found[0].boxes[0].tolist() == [x, y, x + w, y + h]


def test_options_are_checked():
    from foveal.instance.config import InstanceConfig

    with pytest.raises(ConfigError, match="boundary-width"):
        InstanceConfig(data="x.json", model="unet-watershed", boundary_width=0).validate()
    with pytest.raises(ConfigError, match="multiple of the U-Net's stride 16"):
        InstanceConfig(data="x.json", model="unet-watershed", crop_size=[40]).validate()
    with pytest.raises(ConfigError, match="elevation"):
        InstanceConfig(data="x.json", model="unet-watershed", watershed_options={"elevation": "up"}).validate()
    InstanceConfig(data="x.json", model="unet-watershed", crop_size=[32], unet_augment="microscopy").validate()


@pytest.mark.slow
def test_train_evaluate_predict(coco_file, tmp_path, capsys):
    from foveal.cli.main import main

    assert main(["instance", "train", "--model", "unet-watershed", "--data", str(coco_file), "--image-size", "64",
                 "--channels", "1", "--unet-options", "width=4,depth=2", "--epochs", "1", "--batch-size", "4",
                 "--crop-size", "32", "--unet-augment", "hflip,vflip", "--output", str(tmp_path),
                 "--name", "run", "--seed", "0"]) == 0
    run = tmp_path / "run"
    capsys.readouterr()
    card = json.loads((run / "metrics.json").read_text())
    assert 0 <= card["mask"]["AP50"] <= 1
    assert main(["instance", "evaluate", str(run / "best.keras"), "--data", str(coco_file), "--json",
                 "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_images"] == 10 and (tmp_path / "eval" / "report.html").is_file()
    assert main(["predict", str(run / "best.keras"), str(coco_file.parent.parent / "images" / "3.png"),
                 "--format", "json"]) == 0  # the grammar routes by the card's task
    assert json.loads(capsys.readouterr().out)[0]["file"].endswith("3.png")
    from foveal.models.io import read_card

    trained = read_card(run / "best.keras").training  # the marker threshold chosen on the validation image
    assert trained["marker_threshold"] == "validation"
    assert trained["watershed"]["interior_threshold"] == trained["marker_threshold_search"]["chosen"]

    # the export: the U-Net as a segmenter, the watershed in the runner; same instances, same mask AP
    from foveal.instance.export_check import load_instance_model
    from foveal.instance.predict import predict_files

    target = tmp_path / "uw.onnx"
    assert main(["export", str(run / "best.keras"), "--format", "onnx", "--data", str(coco_file), "--output",
                 str(target), "--samples", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["accuracy_metric"] == "mask_ap", report
    assert report["accuracy"]["export"] == pytest.approx(report["accuracy"]["keras"], abs=1e-6)
    files = sorted((coco_file.parent.parent / "images").glob("*.png"))[:3]
    keras_model, card = load_instance_model(run / "best.keras")
    export_model, written = load_instance_model(target)
    want = predict_files(keras_model, card, files, score_threshold=0.0)
    assert [len(r["instances"]) for r in predict_files(export_model, written, files, score_threshold=0.0)] == [
        len(r["instances"]) for r in want]
    from serve.conftest import TestClient

    from foveal.serve.app import create_app

    with TestClient(create_app(target)) as client:
        answer = client.post("/predict", files={"image": ("3.png", files[0].read_bytes(), "image/png")}).json()
    assert answer["task"] == "instance"
    assert len(answer["instances"]) == len(predict_files(keras_model, card, files[:1])[0]["instances"])
