"""U-Net + watershed with several classes: interior targets by class, each watershed region takes
the class with the most interior probability, scored by the same COCO mask AP (pycocotools)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.instance.label_maps import label_maps_to_coco, write_coco, write_label_map
from foveal.instance.watershed import instance_targets
from tests.instance.conftest import pycocotools_segm_stats

SIZE = 64
NAMES = {1: "disc", 2: "square"}


def _labels(i: int) -> np.ndarray:
    """Cityscapes values: two touching discs (class 1) and a square (class 2)."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    labels = np.zeros((SIZE, SIZE), np.int32)
    cx, cy = 16 + 2 * (i % 4), 20 + 3 * (i % 5)
    labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 100] = 1000
    labels[(yy - cy - 4) ** 2 + (xx - cx - 18) ** 2 <= 100] = 1001
    labels[44:58, 40 - i:54 - i] = 2000
    return labels


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-classes")
    (root / "images").mkdir()
    for i in range(4):
        labels = _labels(i)
        image = np.where(labels >= 2000, 120, np.where(labels > 0, 220, 30)).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        write_label_map(root / "instances" / f"{i}.png", labels)
    coco = label_maps_to_coco(root, class_encoding="cityscapes", class_names=NAMES)
    return write_coco(coco, root / "annotations" / "instances_train.json")



def test_class_targets_and_perfect_probabilities_give_mask_ap_1(coco_file):
    from foveal.instance.data import read_instances
    from foveal.instance.scoring import score_instances, to_coco_results
    from foveal.instance.watershed_family import TargetImages, UNetWatershedFamily, class_instances, target_names

    data = read_instances(coco_file)
    assert data.class_names == ["disc", "square"]
    assert target_names(data.class_names) == ["background", "interior:disc", "interior:square", "boundary"]
    pairs = TargetImages(data, 2)
    targets = [pairs.targets(k) for k in range(len(data))]
    for k, path in enumerate(data.paths):
        labels = _labels(int(str(path).rsplit("/", 1)[-1].split(".")[0]))
        three = instance_targets(labels, 2)
        expected = np.where(three == 1, np.where(labels >= 2000, 2, 1), np.where(three == 2, 3, 0))
        assert np.array_equal(targets[k], expected)
    card = SimpleNamespace(training={"watershed": {"min_area": 8}, "score_threshold": 0.25, "max_detections": 100},
                           class_names=data.class_names)
    probs = np.stack([np.eye(4, dtype=np.float32)[t] for t in targets])
    sizes = [(int(w), int(h)) for w, h in data.image_sizes]
    found = UNetWatershedFamily().to_instances({"probabilities": probs}, card, sizes)
    assert [sorted(f.classes.tolist()) for f in found] == [[0, 0, 1]] * 4
    metrics = score_instances(data, found)
    assert metrics["mask"]["AP"] == pytest.approx(1.0)
    gt = data.coco_dict()
    results = to_coco_results(found, [c["id"] for c in gt["categories"]])
    assert metrics["mask"]["AP"] == pytest.approx(pycocotools_segm_stats(gt, results)[0], abs=1e-6)
    # a region half of one class, half of the other: the larger mass wins, the score is its share
    labels = np.zeros((4, 4), np.int32)
    labels[:, :3] = 1
    p = np.zeros((4, 4, 4), np.float32)
    p[:, :2, 1], p[:, 2, 2] = 1.0, 1.0
    classes, scores = class_instances(p, labels, np.array([0.9]))
    assert classes.tolist() == [0] and scores[0] == pytest.approx(0.9 * 2 / 3)


def test_cli_evaluates_a_multiclass_unet(coco_file, tmp_path, capsys):
    import keras

    from foveal.instance.unet_watershed import post_options
    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter

    keras.utils.set_random_seed(0)
    model = build_segmenter("unet", num_classes=4, channels=1, options={"depth": 2, "width": 4})
    card = ModelCard("unet-watershed-resnet18", ["disc", "square"], (64, 64, 1), keep_aspect=False, task="instance",
                     training={"model": "unet-watershed", "unet_options": {"depth": 2, "width": 4},
                               "watershed": post_options(min_area=4, interior_threshold=0.3),
                               "score_threshold": 0.0, "max_detections": 100})
    path = save_model(model, tmp_path / "unet.keras", card)
    assert main(["instance", "evaluate", str(path), "--data", str(coco_file), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_images"] == 4 and 0 <= metrics["mask"]["AP"] <= 1


@pytest.mark.slow
def test_train_two_classes_from_the_command_line(coco_file, tmp_path, capsys):
    assert main(["instance", "train", "--model", "unet-watershed", "--data", str(coco_file), "--image-size", "64",
                 "--channels", "1", "--unet-options", "width=4,depth=2", "--epochs", "1", "--batch-size", "2",
                 "--val-split", "0.25", "--test-split", "0.25", "--output", str(tmp_path), "--name", "run",
                 "--seed", "0"]) == 0
    card = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= card["mask"]["AP50"] <= 1
    from foveal.models.io import read_card

    saved = read_card(tmp_path / "run" / "best.keras")
    assert saved.class_names == ["disc", "square"] and len(saved.training["target_classes"]) == 4
