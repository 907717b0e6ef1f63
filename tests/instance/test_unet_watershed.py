"""U-Net + watershed end to end through the CLI, with the network's probabilities replaced by the
targets (so the expected AP is known) and the scores checked against pycocotools."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.errors import ModelError
from foveal.instance.label_maps import read_label_map, write_label_map
from foveal.instance.watershed import instance_targets

SIZE = 48


def _labels(i: int) -> np.ndarray:
    """Image i: two touching discs (i = 0, 1) or two apart (i = 2)."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    labels = np.zeros((SIZE, SIZE), np.int32)
    gap = 16 if i < 2 else 24
    labels[(yy - 24) ** 2 + (xx - 12) ** 2 <= 81] = 1
    labels[(yy - 24) ** 2 + (xx - 12 - gap) ** 2 <= 81] = 2
    return labels


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import keras

    from foveal.models import ModelCard, save_model
    from foveal.segmentation.train import build_segmenter

    root = tmp_path_factory.mktemp("inst")
    (root / "images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((SIZE, SIZE, 3), 10 * i, np.uint8)).save(root / "images" / f"{i}.png")
        write_label_map(root / "instances" / f"{i}.png", _labels(i))
    keras.utils.set_random_seed(0)

    def save(names, name):
        model = build_segmenter("unet", num_classes=len(names), channels=3, options={"width": 2, "depth": 1})
        card = ModelCard("unet", names, (SIZE, SIZE, 3), preprocessing="rescale", task="segment",
                         training={"stride": 2, "mask_format": "palette", "ignore_label": 255})
        return save_model(model, root / name, card)

    return root, save(["background", "interior", "boundary"], "ws.keras"), save(["a", "b"], "other.keras")


@pytest.fixture
def perfect(monkeypatch):
    """The 'network' predicts the soft targets of the image whose pixels are 10 * index."""
    import foveal.segmentation.predict as p

    def fake(model, card, image, **_):
        targets = instance_targets(_labels(int(image[0, 0, 0]) // 10), 2)
        return 0.8 * np.eye(3, dtype=np.float32)[targets] + 0.2 / 3

    monkeypatch.setattr(p, "predict_probabilities", fake)


def test_datasets_commands(setup, tmp_path, capsys):
    root, _, _ = setup
    assert main(["datasets", "instances", "to-coco", str(root), "--output", str(tmp_path / "c.json"),
                 "--classes", "disc"]) == 0
    coco = json.loads((tmp_path / "c.json").read_text())
    assert len(coco["annotations"]) == 6 and coco["categories"][0]["name"] == "disc"
    assert main(["datasets", "instances", "to-label-maps", str(tmp_path / "c.json"), "--output",
                 str(tmp_path / "maps"), "--images", str(root / "images")]) == 0
    assert np.array_equal(read_label_map(tmp_path / "maps" / "instances" / "1.png"), _labels(1))
    assert main(["datasets", "instances", "targets", str(tmp_path / "maps"), "--boundary-width", "2"]) == 0
    from foveal.segmentation.data import read_mask_folder

    assert read_mask_folder(tmp_path / "maps").class_names == ["background", "interior", "boundary"]
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse: --output missing
        main(["datasets", "instances", "to-coco", str(tmp_path)])
    assert main(["datasets", "instances", "to-coco", str(tmp_path / "maps" / "instances"), "--output", "x.json"]) == 2
    assert "no images/ folder" in capsys.readouterr().err


def test_evaluate_and_predict(setup, perfect, tmp_path, capsys):
    root, model, other = setup
    out = tmp_path / "eval"
    assert main(["segment", "instances", "evaluate", str(model), "--data", str(root), "--output", str(out),
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["mask_ap"] == pytest.approx(1.0) and metrics["predicted_instances"] == 6
    # the baseline merges the touching discs of images 0 and 1: 2 of 6 found
    assert metrics["baseline"]["predicted_instances"] == 4 and metrics["baseline"]["mask_ap75"] < 0.5
    written = read_label_map(out / "instances" / "0.png")
    assert written.max() == 2 and np.array_equal(written > 0, _labels(0) > 0)
    report = (out / "report.html").read_text()  # the instance task's report
    assert "mask (segm)" in report and "baseline (connected components) mask AP" in report and "<img" in report

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from foveal.instance.unet_watershed import load_ground_truth

    _, gt = load_ground_truth(root)
    gt_api = COCO()
    gt_api.dataset = gt
    gt_api.createIndex()
    results = json.loads((out / "results.json").read_text())
    for r in results[::2]:  # spoil half the masks so AP is neither 0 nor 1
        r["segmentation"] = {"size": [SIZE, SIZE], "counts": "0" + str(SIZE * SIZE - 1) + "1"}
    ev = COCOeval(gt_api, gt_api.loadRes(results), "segm")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    capsys.readouterr()  # pycocotools prints its table
    from foveal.evaluation.detection import coco_evaluate

    ours = coco_evaluate(gt, results, iou_type="segm")
    assert ours.stats["AP"] == pytest.approx(ev.stats[0], abs=1e-6) and 0 < ours.stats["AP"] < 1
    from foveal.instance.unet_watershed import _ap

    few = COCOeval(gt_api, gt_api.loadRes(results), "segm")
    few.params.maxDets = [1, 2, 3]  # pycocotools' summary reads AP50 and AP75 at maxDets[2] (AP: at 100 only)
    few.evaluate(), few.accumulate(), few.summarize()
    capsys.readouterr()
    mine = _ap(gt, results, (1, 2, 3))
    precision = few.eval["precision"][:, :, :, 0, -1]
    assert mine["mask_ap"] == pytest.approx(precision[precision > -1].mean(), abs=1e-6)
    assert (mine["mask_ap50"], mine["mask_ap75"]) == pytest.approx(tuple(few.stats[1:3]), abs=1e-6)

    assert main(["segment", "instances", "predict", str(model), str(root / "images"), "--output",
                 str(tmp_path / "pred"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["count"] for r in rows] == [2, 2, 2] and (tmp_path / "pred" / "overlays" / "2.png").is_file()

    from foveal.instance.label_maps import label_maps_to_coco, write_coco
    from foveal.instance.unet_watershed import evaluate_watershed

    coco = write_coco(label_maps_to_coco(root), tmp_path / "annotations" / "gt.json")
    same = evaluate_watershed(model, coco, images=root / "images", baseline=False)  # COCO ground truth
    assert same["mask_ap"] == metrics["mask_ap"] and "baseline" not in same
    with pytest.raises(ModelError, match="not background, interior, boundary"):
        evaluate_watershed(other, root)
    assert main(["segment", "instances", "evaluate", str(model), "--data", str(root), "--split", "test"]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_predict_names_an_unreadable_file_or_skips_it(setup, perfect, tmp_path, capsys):
    from foveal.errors import DataError
    from foveal.instance.unet_watershed import predict_watershed

    _, model, _ = setup
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png") as info:
        predict_watershed(model, [bad])
    assert "--skip-invalid" in (info.value.hint or "")
    rows = predict_watershed(model, [bad], skip_invalid=True)
    assert len(rows) == 1 and "error" in rows[0] and rows[0]["file"].endswith("broken.png")
