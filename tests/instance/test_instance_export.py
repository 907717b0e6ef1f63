"""Export and serve hooks of instance models (both families) on tiny untrained models: the export
graph run by a runner gives the Keras model's boxes, masks and instances; one-line refusals; the
served answer; the page's RLE decoder. Writing real SavedModel/ONNX exports is the slow tier
(tests/instance/test_instance_run.py, test_instance_export_slow.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .conftest import save_unet_watershed, write_discs


def _decode(rle):
    from foveal.instance.masks import decode_rle

    return decode_rle(rle)


CARD_TRAINING = {"model": "mask-rcnn", "backbone": "resnet18", "mask_size": 28, "mask_threshold": 0.5,
                 "score_threshold": 0.3, "iou_threshold": 0.45}


def _mask_rcnn_card():
    from foveal.models import ModelCard

    return ModelCard("mask-rcnn-resnet18", ["disc", "ring"], (64, 64, 3), task="instance",
                     training=dict(CARD_TRAINING))


def _export_outputs(seed: int = 0) -> dict[str, np.ndarray]:
    """What a Mask R-CNN export's graph answers: detections down to score 0.001, best first, with masks."""
    rng = np.random.default_rng(seed)
    n, d = 2, 6
    x0, y0 = rng.uniform(0, 0.5, (2, n, d))
    boxes = np.stack([x0, y0, x0 + rng.uniform(0.1, 0.5, (n, d)), y0 + rng.uniform(0.1, 0.5, (n, d))], -1)
    scores = -np.sort(-rng.uniform(0.01, 1, (n, d)), axis=1)
    count = np.array([6, 4])
    scores[1, 4:] = 0
    return {"boxes": boxes.astype(np.float32), "scores": scores.astype(np.float32),
            "classes": rng.integers(0, 2, (n, d)).astype(np.float32), "num_detections": count.astype(np.int32),
            "masks": rng.uniform(0, 1, (n, d, 28, 28)).astype(np.float32)}


def test_mask_rcnn_export_outputs_keep_masks_with_boxes_and_render_as_instance_predict(monkeypatch):
    from foveal.export import tasks
    from foveal.export.runners import Runner
    from foveal.instance.export_check import export_card
    from foveal.instance.family import MaskRCNNFamily
    from foveal.instance.masks import paste_masks

    class FakeModel:  # what export_card reads off a Mask R-CNN
        def postprocess_config(self):
            return {"score_threshold": 0.3, "iou_threshold": 0.45, "max_detections": 100, "class_aware": True}

    card = export_card(FakeModel(), _mask_rcnn_card())
    assert card.training["baked_postprocess"]["score_threshold"] == 0.001
    raw = _export_outputs()

    class FakeRunner(Runner):
        def raw(self, images):
            return raw

    runner = FakeRunner(Path("m.onnx"), card)
    got = tasks.outputs(runner, card, np.zeros((2, 64, 64, 3), np.float32))
    keep = [np.flatnonzero(raw["scores"][i][:raw["num_detections"][i]] > 0.3) for i in range(2)]
    assert got["num_detections"].tolist() == [len(k) for k in keep]
    for i, k in enumerate(keep):
        np.testing.assert_array_equal(got["masks"][i][:len(k)], raw["masks"][i][k])
        np.testing.assert_array_equal(got["boxes"][i][:len(k)], raw["boxes"][i][k])

    result = tasks.parity(got, {k: v.copy() for k, v in got.items()}, card, 1e-4)
    assert result["passed"] and result["masks_compared"] == int(got["num_detections"].sum())
    assert result["mean_mask_iou"] == 1.0 and result["max_mask_diff"] == 0.0
    swapped = {**got, "masks": got["masks"][:, ::-1].copy()}  # masks that left their boxes are caught
    assert not tasks.parity(got, swapped, card, 1e-4)["passed"]

    row = {k: v[0] for k, v in got.items()}
    answer = tasks.render(row, card, (96, 80), 5)
    n = int(row["num_detections"])
    want = MaskRCNNFamily().to_instances({k: v[:1] for k, v in got.items()}, card, [(96, 80)])[0]
    pasted = paste_masks(row["masks"][:n], row["boxes"][:n] * [96, 80, 96, 80], 80, 96)
    assert len(answer["instances"]) == n == len(answer["boxes"]) == len(want)
    for d, mask, rle in zip(answer["instances"], pasted, want.rles):
        assert d["mask"] == rle and d["mask"]["size"] == [80, 96] and np.array_equal(_decode(d["mask"]), mask)
        assert d["area"] == int(mask.sum()) and d["label"] in ("disc", "ring")
    assert [d["box"] for d in answer["boxes"]] == [d["box"] for d in answer["instances"]]


def test_mask_rcnn_refuses_tflite_coreml_and_quantization_in_one_line(unet):
    from foveal.errors import ConfigError
    from foveal.instance.export_check import check_export
    from foveal.models.io import read_card

    card = _mask_rcnn_card()
    for fmt, quantize, words in (("tflite", None, "CropAndResize (RoI Align) has no TFLite builtin kernel"),
                                 ("coreml", None, "a Mask R-CNN exports as SavedModel or ONNX only"),
                                 ("onnx", "dynamic", "float32 only")):
        with pytest.raises(ConfigError, match=r"Mask R-CNN") as info:
            check_export(card, fmt, quantize)
        assert words in info.value.message and "\n" not in info.value.message
    check_export(card, "onnx", None)
    check_export(read_card(unet["model"]), "tflite", "int8")  # a U-Net exports as a segmenter does


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    root = tmp_path_factory.mktemp("instance_export")
    return {"model": save_unet_watershed(root / "uw.keras", watershed={"interior_threshold": 0.34, "min_area": 1}),
            "data": write_discs(root / "discs", count=2), "root": root}


def test_unet_watershed_export_graph_gives_the_models_instances(unet):
    from foveal.export import tasks
    from foveal.export.runners import open_runner
    from foveal.instance.export_check import input_signature, instance_model
    from foveal.instance.predict import predict_files
    from foveal.models import load_model

    model, card = load_model(unet["model"])
    assert input_signature(card) == (None, None, 3)
    runner = open_runner(unet["model"])
    written = tasks.export_card(model, card)
    images = np.stack([np.repeat(np.where(_disc(i) > 0, 200.0, 40.0)[..., None], 3, -1) for i in range(2)])
    ref, got = tasks.outputs(model, card, images), tasks.outputs(runner, written, images)
    result = tasks.parity(ref, got, written, 1e-4)
    assert result["passed"] and result["keras_instances"] == result["export_instances"] > 0, result
    assert result["mean_mask_iou"] == pytest.approx(1.0)
    answer = tasks.render({k: v[0] for k, v in got.items()}, written, (128, 128), 5)
    assert answer["instances"] and all(d["mask"]["size"] == [128, 128] and d["label"] == "disc"
                                       for d in answer["instances"])
    files = sorted((unet["data"].parent.parent / "images").glob("*.png"))
    want = predict_files(model, card, files)
    found = predict_files(instance_model(runner, written), written, files)
    assert [r["instances"] for r in found] == [r["instances"] for r in want]


def _disc(i: int) -> np.ndarray:
    from .conftest import disc_labels

    return disc_labels(i)


def test_served_instances_are_rle_masks_the_page_can_decode(unet):
    from pycocotools import mask as mask_utils
    from serve.conftest import TestClient, encode

    from foveal.serve.app import create_app

    pixels = np.repeat(np.where(_disc(1) > 0, 200, 40).astype(np.uint8)[..., None], 3, -1)
    with TestClient(create_app(unet["model"], browser_model=False)) as client:
        health = client.get("/health").json()
        answer = client.post("/predict", files={"image": ("discs.png", encode(pixels), "image/png")})
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    assert health["model"]["task"] == "instance" and health["browser_model_note"]
    assert answer["task"] == "instance" and answer["instances"] and answer["boxes"]
    masks = [mask_utils.decode({"size": d["mask"]["size"], "counts": d["mask"]["counts"].encode()})
             for d in answer["instances"]]
    assert all(m.shape == (64, 64) and m.sum() == d["area"] for m, d in zip(masks, answer["instances"]))

    # app.js's decoder (run by node) gives pycocotools' pixels
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's RLE decoder is not checked")
    script = Path(__file__).parents[2] / "src" / "foveal" / "serve" / "static" / "app.js"
    source = script.read_text()
    functions = "\n".join(source[source.index(f"function {name}("):].split("\n}\n", 1)[0] + "\n}"
                          for name in ("rleCounts", "rleIndices"))
    rles = [d["mask"] for d in answer["instances"]]
    rng = np.random.default_rng(0)
    odd = (rng.uniform(size=(37, 53)) > 0.5).astype(np.uint8)  # many short runs: multi-chunk counts
    rles.append({k: (v.decode() if isinstance(v, bytes) else v) for k, v in
                 mask_utils.encode(np.asfortranarray(odd)).items()})
    program = f"{functions}\nconst rles = {json.dumps(rles)};\nconsole.log(JSON.stringify(rles.map(rleIndices)));"
    indices = json.loads(subprocess.run([node, "-e", program], capture_output=True, text=True, check=True,
                                        timeout=30).stdout)
    for rle, got in zip(rles, indices):
        want = np.flatnonzero(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).ravel())
        assert sorted(got) == want.tolist()


def test_marker_threshold_is_chosen_on_validation_and_written_into_the_card(unet, tmp_path, monkeypatch):
    """Interiors at P 0.65 and boundaries at 0.55: markers above 0.3-0.5 join the touching discs,
    above 0.7 there are none, so 0.6 scores best; tune() records it and the file's card gets it."""
    from types import SimpleNamespace

    from foveal.instance.data import read_instances
    from foveal.instance.watershed_family import UNetWatershedFamily, choose_marker_threshold
    from foveal.models.io import read_card, replace_card

    class Soft:  # image values 200 (disc), 90 (contour), 40 (background) -> class probabilities
        def predict_on_batch(self, images):
            v = np.asarray(images)[..., :1]
            return np.where(v > 150, [0.05, 0.65, 0.30], np.where(v > 60, [0.05, 0.55, 0.40], [0.9, 0.05, 0.05]))

    data = read_instances(unet["data"])
    card = read_card(unet["model"])
    card.training["watershed"] = card.training["watershed"] | {"min_area": 8}
    search = choose_marker_threshold(Soft(), card, data)
    assert search["grid"] == [0.3, 0.4, 0.5, 0.6, 0.7] and search["chosen"] == 0.6
    assert search["val_mask_ap"][3] == pytest.approx(1.0) and max(search["val_mask_ap"][:3]) < 0.9
    assert search["val_mask_ap"][4] == 0.0

    import foveal.instance.watershed_family as module

    monkeypatch.setattr(module, "choose_marker_threshold", lambda *a, **k: search)  # scored above
    family = UNetWatershedFamily()
    given = SimpleNamespace(marker_threshold=0.45, watershed_options={}, batch_size=4)
    assert family.tune(given, Soft(), card, SimpleNamespace(val=data)) is None  # the user's value stays
    cfg = SimpleNamespace(marker_threshold=None, watershed_options={}, batch_size=4)
    assert family.tune(cfg, Soft(), card, SimpleNamespace(val=data))["chosen"] == 0.6
    assert card.training["watershed"]["interior_threshold"] == 0.6 and card.training["marker_threshold"] == "validation"
    copy = tmp_path / "m.keras"
    copy.write_bytes(unet["model"].read_bytes())
    replace_card(copy, card)
    assert read_card(copy).training["marker_threshold_search"]["chosen"] == 0.6


def test_marker_threshold_option_is_checked():
    from foveal.errors import ConfigError
    from foveal.instance.config import InstanceConfig
    from foveal.instance.watershed_family import watershed_settings

    cfg = InstanceConfig(data="x.json", model="unet-watershed", marker_threshold=0.6)
    cfg.validate()
    assert watershed_settings(cfg)["interior_threshold"] == 0.6
    with pytest.raises(ConfigError, match="--marker-threshold must be in"):
        InstanceConfig(data="x.json", model="unet-watershed", marker_threshold=1.5).validate()
    with pytest.raises(ConfigError, match="disagree"):
        InstanceConfig(data="x.json", model="unet-watershed", marker_threshold=0.6,
                       watershed_options={"interior_threshold": 0.4}).validate()
