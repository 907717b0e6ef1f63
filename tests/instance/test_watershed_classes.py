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
from tests.instance.conftest import pycocotools_segm_stats, two_class_labels

SIZE = 64
NAMES = {1: "disc", 2: "square"}


def _labels(i: int) -> np.ndarray:
    """Two touching discs (class 1) and a square (class 2)."""
    return two_class_labels(i, SIZE)


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


def test_segment_instances_evaluate_scores_several_classes_as_pycocotools(coco_file, tmp_path, capsys, monkeypatch):
    """`foveal segment instances evaluate` of a segmenter on background, interior:disc,
    interior:square, boundary: each region gets a category, the mean over the classes equals
    pycocotools' on the written results (one square called a disc, so AP is neither 0 nor 1)."""
    import keras

    import foveal.segmentation.predict as p
    from foveal.data.files import decode_file
    from foveal.errors import DataError
    from foveal.instance.unet_watershed import match_categories, predict_watershed
    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter

    keras.utils.set_random_seed(0)
    names = ["background", "interior:disc", "interior:square", "boundary"]
    card = ModelCard("unet", names, (SIZE, SIZE, 1), preprocessing="rescale", task="segment",
                     training={"stride": 2, "mask_format": "palette", "ignore_label": 255})
    model = save_model(build_segmenter("unet", num_classes=4, channels=1, options={"width": 2, "depth": 1}),
                       tmp_path / "ws4.keras", card)
    images = coco_file.parent.parent / "images"
    index = {decode_file(images / f"{i}.png", 1).tobytes(): i for i in range(4)}

    def fake(model, card, image, **_):  # the soft targets of the image, the square of image 0 called a disc
        i = index[image.tobytes()]
        labels = _labels(i)
        three = instance_targets(labels, 2)
        t = np.where(three == 1, np.where((labels >= 2000) & (i > 0), 2, 1), np.where(three == 2, 3, 0))
        return 0.8 * np.eye(4, dtype=np.float32)[t] + 0.05

    monkeypatch.setattr(p, "predict_probabilities", fake)
    out = tmp_path / "eval"
    assert main(["segment", "instances", "evaluate", str(model), "--data", str(coco_file), "--output", str(out),
                 "--report-images", "1", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    gt = json.loads(coco_file.read_text())
    assert metrics["classes"] == 2 and metrics["predicted_instances"] == 12
    assert sorted({r["category_id"] for r in results}) == [1, 2]
    assert 0.5 < metrics["mask_ap"] < 1
    assert metrics["mask_ap"] == pytest.approx(pycocotools_segm_stats(gt, results)[0], abs=1e-6)
    assert metrics["baseline"]["mask_ap"] < metrics["mask_ap"]  # the touching discs merge without watershed
    assert "mask (segm)" in (out / "report.html").read_text()
    row, = predict_watershed(model, [images / "1.png"])
    assert sorted(i["class"] for i in row["instances"]) == ["disc", "disc", "square"]
    categories = gt["categories"]
    assert match_categories(["square", "disc"], categories).tolist() == [2, 1]  # by name, in the model's order
    with pytest.raises(DataError, match="2 categories, but the model finds objects of one class"):
        match_categories(["object"], categories)
    with pytest.raises(DataError, match=r"\(disc, circle\) are not the categories \(disc, square\)"):
        match_categories(["disc", "circle"], categories)
    with pytest.raises(DataError, match="are not the categories"):  # a category the model lacks
        match_categories(["disc", "square"], [*categories, {"id": 3, "name": "star"}])
