"""The feature pyramid option of Faster R-CNN and Mask R-CNN (Lin et al., "Feature Pyramid
Networks for Object Detection", CVPR 2017): RoI level assignment against the paper's formula in
NumPy, pyramid RoI pooling against the single-map layers, per-level top-k proposals, the model
(fit, predict, .keras round trip) and its options; the slow tier runs `--fpn` from the command
line through training and export with parity.
"""

from __future__ import annotations

import dataclasses
import json
import math

import keras
import numpy as np
import pytest

from foveal.cli.main import main
from foveal.detection.config import DetectConfig
from foveal.detection.faster_rcnn import (
    OCTAVE_SCALES,
    FasterRCNNModel,
    RCNNSettings,
    build_faster_rcnn,
    fpn_anchor_sizes,
    scaled_roi_canonical,
)
from foveal.errors import ConfigError
from foveal.instance.config import InstanceConfig
from foveal.layers.roi import PyramidRoIPool, pyramid_levels, roi_align, roi_max_pool
from foveal.ops import rcnn

from .test_faster_rcnn import squares

TINY_FPN = dict(input_shape=(64, 64, 3), backbone_options={"width": 16}, fpn=True, fpn_width=16, head_width=16,
                anchor_sizes=[8, 16, 32, 64, 128], roi_batch=32, rpn_batch=64, pre_nms_train=60, post_nms_train=60,
                pre_nms_test=40, post_nms_test=30)


def numpy_level(box, k0: int = 4, canonical: float = 224.0, low: int = 2, high: int = 5) -> int:
    """The paper's eq. 1, k = floor(k0 + log2(sqrt(w h) / 224)), clipped to [low, high]."""
    w, h = box[2] - box[0], box[3] - box[1]
    if w * h <= 0:
        return low
    return int(min(max(math.floor(k0 + math.log2(math.sqrt(w * h) / canonical)), low), high))


def test_roi_levels_follow_the_papers_formula():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 1200, size=(500, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=-1)
    exact = np.array([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 111, 113], [0, 0, 56, 56],
                      [5, 5, 5, 9], [0, 0, 896, 896], [10, 10, 10 + 223.9, 10 + 224.1]])
    boxes = np.concatenate([boxes, exact]).astype(np.float32)
    got = pyramid_levels(boxes).numpy()
    np.testing.assert_array_equal(got, [numpy_level(b) for b in boxes.astype(np.float64)])
    assert got[-8:].tolist() == [4, 3, 5, 2, 2, 2, 5, 3]  # 111x113: sqrt(wh) just below 112
    assert set(got.tolist()) == {2, 3, 4, 5}
    # clipped to the levels a pyramid has
    np.testing.assert_array_equal(pyramid_levels(boxes, min_level=3, max_level=4).numpy(), np.clip(got, 3, 4))


def test_roi_levels_with_a_canonical_side_scaled_to_the_input():
    # roi_canonical="scaled": 224 x min(H, W) / 800, 35.84 pixels for 128 x 128 inputs
    assert scaled_roi_canonical((128, 128)) == pytest.approx(35.84)
    assert scaled_roi_canonical((96, 160, 3)) == pytest.approx(224 * 96 / 800)
    rng = np.random.default_rng(4)
    corners = rng.uniform(0, 128, size=(400, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=-1)
    exact = np.array([[0, 0, 17.92, 17.92], [0, 0, 17.9, 17.9], [0, 0, 35.84, 35.84], [0, 0, 71.68, 71.68],
                      [0, 0, 12, 12], [0, 0, 20, 20], [0, 0, 40, 40], [0, 0, 80, 80]])
    boxes = np.concatenate([boxes, exact]).astype(np.float32)
    for canonical in (35.84, 56.0):
        got = pyramid_levels(boxes, canonical_size=canonical).numpy()
        reference = [numpy_level(b, canonical=canonical) for b in boxes.astype(np.float32).astype(np.float64)]
        np.testing.assert_array_equal(got, reference)
    assert pyramid_levels(exact, canonical_size=35.84).numpy().tolist() == [3, 2, 4, 5, 2, 3, 4, 5]
    assert pyramid_levels(exact).numpy().tolist() == [2] * 8  # the paper's 224: P2 below 112 pixels
    # the layer pools each RoI from that level (constant maps: the value is the level), and a
    # layer saved before the setting existed loads with the paper's 224
    maps = [np.full((1, 128 // 2**k, 128 // 2**k, 1), k, np.float32) for k in (2, 3, 4, 5)]
    centred = np.array([[[64 - s / 2, 64 - s / 2, 64 + s / 2, 64 + s / 2] for s in (12, 20, 40, 80)]], np.float32)
    layer = PyramidRoIPool(2, levels=[2, 3, 4, 5], canonical_size=scaled_roi_canonical((128, 128)))
    assert layer([*maps, centred])[0, :, 0, 0, 0].numpy().tolist() == [2, 3, 4, 5]
    config = layer.get_config()
    assert config.pop("canonical_size") == pytest.approx(35.84)
    old = PyramidRoIPool.from_config(config)
    assert old.canonical_size == 224.0
    assert old([*maps, centred])[0, :, 0, 0, 0].numpy().tolist() == [2, 2, 2, 2]
    assert RCNNSettings().roi_canonical == 224.0 and RCNNSettings.from_dict({"roi_canonical": 48}).roi_canonical == 48.0
    for bad in (0, -3, "auto", True):
        with pytest.raises(ConfigError, match="roi_canonical must be a positive box side in pixels or 'scaled'"):
            RCNNSettings.from_dict({"roi_canonical": bad})


@pytest.mark.parametrize("kind", ["align", "max"])
def test_pyramid_roi_pool_reads_each_roi_from_its_level(kind):
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(2, 256 // 2**k, 256 // 2**k, 3)).astype(np.float32) for k in (2, 3, 4, 5)]
    corners = rng.uniform(-10, 266, size=(2, 30, 2, 2))
    rois = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1).astype(np.float32)
    rois[0, :4] = [[0, 0, 20, 20], [0, 0, 120, 100], [30, 30, 250, 250], [40, 40, 44, 60]]
    out = PyramidRoIPool(3, levels=[2, 3, 4, 5], kind=kind)([*maps, rois]).numpy()
    assert out.shape == (2, 30, 3, 3, 3)
    single = roi_align if kind == "align" else roi_max_pool
    by_level = {k: single(maps[k - 2], rois, pool_size=3, stride=2.0**k).numpy() for k in (2, 3, 4, 5)}
    for b in range(2):
        for r in range(30):
            np.testing.assert_allclose(out[b, r], by_level[numpy_level(rois[b, r].astype(np.float64))][b, r],
                                       atol=1e-6)
    layer = PyramidRoIPool(3, levels=[3, 4, 5], kind=kind)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="consecutive"):
        PyramidRoIPool(3, levels=[2, 4])


def test_proposals_take_the_top_k_of_each_level_before_nms():
    # two levels: 6 anchors where every logit beats the 4 of the second level
    anchors = np.array([[i * 10, 0, i * 10 + 8, 8] for i in range(10)], np.float32)
    logits = np.array([[9, 8, 7, 6, 5, 4, 1, 3, 0, 2]], np.float32)
    deltas = np.zeros((1, 10, 4), np.float32)
    boxes, _, valid = rcnn.generate_proposals(logits, deltas, anchors, (16, 200), pre_nms=2, post_nms=10,
                                              nms_iou=0.7, level_counts=[6, 4])
    kept = {tuple(b) for b in boxes[0][valid[0]].numpy().round(3).tolist()}
    assert kept == {tuple(anchors[i].tolist()) for i in (0, 1, 7, 9)}  # top 2 of each level
    boxes, _, valid = rcnn.generate_proposals(logits, deltas, anchors, (16, 200), pre_nms=2, post_nms=10,
                                              nms_iou=0.7)
    assert {tuple(b) for b in boxes[0][valid[0]].numpy().round(3).tolist()} == {tuple(anchors[i].tolist())
                                                                               for i in (0, 1)}


@pytest.fixture(scope="module")
def fpn_model():
    return build_faster_rcnn("resnet18", 2, **TINY_FPN, score_threshold=0.0, max_detections=10)


def test_fpn_maps_rpn_outputs_and_one_anchor_size_per_level(fpn_model):
    model = fpn_model
    assert model.fpn_levels == [2, 3, 4, 5] and model.level == "FPN P2-P6" and model.stride == 4
    images, _ = squares(2)
    out = model(images)
    sides = [int(f.shape[1]) for f in out["features"]]
    assert sides == [16, 8, 4, 2, 1] and all(int(f.shape[-1]) == 16 for f in out["features"])
    cells = sum(s * s for s in sides)
    assert out["rpn_objectness"].shape == (2, cells * 3) and out["rpn_deltas"].shape == (2, cells * 3, 4)
    anchors = model.anchors_for(out["features"]).numpy()
    assert anchors.shape == (cells * 3, 4)
    # one anchor size per level: the square anchors of P2 are 8 pixels, of P6 128
    square = anchors[1::3]
    sizes = np.sqrt((square[:, 2] - square[:, 0]) * (square[:, 3] - square[:, 1]))
    np.testing.assert_allclose(sizes[:256], 8.0, rtol=1e-5)
    np.testing.assert_allclose(sizes[-1:], 128.0, rtol=1e-5)


@pytest.mark.slow  # a training step, detections, a .keras round trip (~15 s on the loaded machine)
def test_fpn_faster_rcnn_fits_predicts_and_round_trips(fpn_model, tmp_path):
    model = fpn_model
    images, targets = squares(4)
    model.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)  # eager: tracing would cost more than the step
    lateral = next(v for v in model.trainable_variables if "fpn_lateral_P2" in v.path)
    start = lateral.numpy().copy()
    logs = model.train_on_batch(images, targets, return_dict=True)
    assert all(np.isfinite(logs[k]) for k in ("rpn_cls_loss", "rpn_box_loss", "cls_loss", "box_loss"))
    assert not np.allclose(lateral.numpy(), start)  # the finest lateral convolution learns
    before = {k: v.numpy() for k, v in model.detections(images[:2]).items()}  # what predict runs, eagerly
    assert before["boxes"].shape == (2, 10, 4) and before["num_detections"].min() > 0
    path = tmp_path / "fpn.keras"
    model.save(path)
    clone = keras.models.load_model(path)
    assert clone.fpn_levels == [2, 3, 4, 5] and clone.rcnn.anchor_sizes == model.rcnn.anchor_sizes
    after = {k: v.numpy() for k, v in clone.detections(images[:2]).items()}
    np.testing.assert_allclose(after["boxes"], before["boxes"], atol=1e-5)
    np.testing.assert_allclose(after["scores"], before["scores"], atol=1e-5)


@pytest.mark.slow  # graph-mode fit, partial last batch (7 images: 4 then 3); 2 epochs took 443 s at load ~30
def test_fpn_faster_rcnn_trains_in_graph_mode_with_a_partial_batch():
    import tensorflow as tf

    model = build_faster_rcnn("resnet18", 2, **TINY_FPN, score_threshold=0.0, max_detections=10)
    images, targets = squares(7)
    model.compile(keras.optimizers.Adam(1e-3))
    history = model.fit(tf.data.Dataset.from_tensor_slices((images, targets)).batch(4), epochs=1, verbose=0).history
    assert all(np.isfinite(history[k]).all() for k in ("rpn_cls_loss", "rpn_box_loss", "cls_loss", "box_loss"))


@pytest.mark.slow  # a Mask R-CNN training step (~1 min on the loaded machine)
def test_fpn_mask_rcnn_trains_its_mask_head_on_the_pyramid():
    from foveal.instance.mask_rcnn import build_mask_rcnn

    model = build_mask_rcnn("resnet18", 2, **TINY_FPN, mask_width=8, mask_convs=1, mask_pool=7,
                            score_threshold=0.0, max_detections=5)
    images, targets = squares(2)
    # the instance pipeline's form: each mask in its box's frame (64 x 64 coverage, 0..255); a
    # square fills its box
    masks = np.zeros((2, 3, 64, 64), np.uint8)
    masks[:, 0] = 255
    model.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    logs = model.train_on_batch(images, {**targets, "masks": masks}, return_dict=True)
    assert np.isfinite(logs["mask_loss"]) and logs["mask_loss"] > 0
    assert model.detections(images)["masks"].shape == (2, 5, 14, 14)


def numpy_level_anchors(side: int, stride: int, sizes, ratios) -> np.ndarray:
    """Every anchor of a ``side`` x ``side`` map, written out cell by cell: centre ((j + 0.5) s,
    (i + 0.5) s), then each size, then each ratio r = h / w (w = size / sqrt(r), h = size sqrt(r))."""
    rows = []
    for i in range(side):
        for j in range(side):
            cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
            for size in sizes:
                for r in ratios:
                    w, h = size / math.sqrt(r), size * math.sqrt(r)
                    rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.asarray(rows)


@pytest.fixture(scope="module")
def default_fpn():
    """The tiny FPN with its default anchors (``fpn_model``'s are the old one size per level)."""
    return build_faster_rcnn("resnet18", 2, **{k: v for k, v in TINY_FPN.items() if k != "anchor_sizes"})


def test_default_fpn_anchors_are_retinanets_per_level(default_fpn):
    model = default_fpn
    assert model.rcnn.anchor_sizes == [16.0, 32.0, 64.0, 128.0, 256.0] == fpn_anchor_sizes(range(2, 7))
    assert model.rcnn.anchor_scales == pytest.approx([1.0, 2 ** (1 / 3), 2 ** (2 / 3)])
    assert model.anchors_per_cell == 9 and model.rcnn.num_anchors == 45
    images, _ = squares(1)
    out = model(images)
    got = model.anchors_for(out["features"]).numpy()
    assert out["rpn_objectness"].shape == (1, got.shape[0]) and out["rpn_deltas"].shape == (1, got.shape[0], 4)
    expected = np.concatenate([numpy_level_anchors(64 // 2**k, 2**k, [4 * 2**k * c for c in (1, 2 ** (1 / 3), 4 ** (1 / 3))],
                                                   [0.5, 1.0, 2.0]) for k in range(2, 7)])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(model.anchors_for_image((64, 64)), expected, atol=1e-4)
    # a non-square input: ceil(side / stride) cells per level, the maps' sides
    wide = model.anchors_for_image((40, 72))
    assert len(wide) == 9 * sum(math.ceil(40 / 2**k) * math.ceil(72 / 2**k) for k in range(2, 7))
    # given sizes keep one anchor size per level unless scales are given too
    assert RCNNSettings.from_dict({"anchor_sizes": [8, 16]}).anchor_scales == [1.0]


def test_default_fpn_anchors_fit_small_boxes_better(fpn_model, default_fpn):
    # 400 boxes of sqrt(area) 12..46 px and aspect 0.6..1.6 in 128 x 128 images (the small shapes recipe's)
    rng = np.random.default_rng(3)
    side, aspect = rng.uniform(12, 46, 400), rng.uniform(0.6, 1.6, 400)
    w, h = side / np.sqrt(aspect), side * np.sqrt(aspect)
    x, y = rng.uniform(0, 128 - w), rng.uniform(0, 128 - h)
    boxes = np.stack([x, y, x + w, y + h], 1)
    old = rcnn.best_anchor_iou(fpn_model.anchors_for_image((128, 128)), boxes)  # one size per level, 8..128
    new = rcnn.best_anchor_iou(default_fpn.anchors_for_image((128, 128)), boxes)
    # best IoU against TensorFlow's pairwise IoU, for a few boxes
    tf_best = rcnn.pairwise_iou(default_fpn.anchors_for_image((128, 128)), boxes[:20]).numpy().max(0)
    np.testing.assert_allclose(new[:20], tf_best, atol=1e-5)
    # measured: median best IoU 0.748 against 0.575, boxes with an anchor above 0.7 86% against 12%
    assert np.median(new) > 0.72 and np.median(old) < 0.6
    assert np.mean(new > 0.7) > 0.8 and np.mean(old > 0.7) < 0.2
    assert np.median(new[side < 32]) > np.median(old[side < 32]) + 0.15


def test_old_fpn_models_load_with_one_anchor_size_per_level(fpn_model):
    # a model saved before anchor_scales and rpn_box_norm existed: its settings have neither key
    config = fpn_model.get_config()
    assert config["settings"].pop("anchor_scales") == [1.0]
    assert config["settings"].pop("rpn_box_norm") == "sampled"
    assert config["settings"].pop("roi_canonical") == 224.0
    clone = FasterRCNNModel.from_config(config)
    assert clone.rcnn.anchor_sizes == [8.0, 16.0, 32.0, 64.0, 128.0] and clone.anchors_per_cell == 3
    assert clone.rcnn.rpn_box_norm == "locations"  # the loss it was trained with
    assert clone.rcnn.roi_canonical == 224.0 and clone.roi_layer.canonical_size == 224.0  # the paper's level rule
    np.testing.assert_allclose(clone.anchors_for_image((64, 64)), fpn_model.anchors_for_image((64, 64)))
    np.testing.assert_allclose(clone.anchors_for_image((64, 64))[:3],
                               numpy_level_anchors(1, 4, [8.0], [0.5, 1.0, 2.0]), atol=1e-5)


def test_rpn_box_loss_is_divided_by_locations_or_sampled_anchors(fpn_model):
    images, targets = squares(2)
    out = fpn_model(images)
    parts, default = {}, fpn_model.rcnn.rpn_box_norm
    assert default == "sampled" and RCNNSettings().rpn_box_norm == "locations"  # FPN's default, the single map's
    for norm in ("locations", "sampled"):
        fpn_model.rcnn.rpn_box_norm = norm
        try:
            parts[norm] = float(fpn_model.losses_of(images, targets, out)["rpn_box_loss"])
        finally:
            fpn_model.rcnn.rpn_box_norm = default
    locations = 2 * sum((64 // 2**k) ** 2 for k in range(2, 7))  # cells of P2..P6, per image
    sampled = 2 * TINY_FPN["rpn_batch"]  # every image has enough negatives to fill its sample
    assert parts["locations"] > 0
    assert parts["sampled"] == pytest.approx(parts["locations"] * locations / sampled, rel=1e-4)
    with pytest.raises(ConfigError, match="rpn_box_norm must be one of locations, sampled"):
        RCNNSettings.from_dict({"rpn_box_norm": "cells"})
    with pytest.raises(ConfigError, match="anchor scales must be positive"):
        RCNNSettings.from_dict({"anchor_scales": [1, 0]})


def test_scaled_roi_canonical_is_resolved_to_the_models_input_and_saved(fpn_model):
    # the tiny FPN's own backbone and options, with the setting given (no deserialisation: fast)
    options = dict(fpn_levels=[2, 3, 4, 5], fpn_width=16, head_width=16, stride=4,
                   settings={**dataclasses.asdict(fpn_model.rcnn), "roi_canonical": "scaled"})
    model = FasterRCNNModel(fpn_model.backbone, 2, input_size=(64, 64, 3), **options)  # 224 x 64 / 800
    assert model.rcnn.roi_canonical == pytest.approx(17.92) and model.roi_layer.canonical_size == pytest.approx(17.92)
    assert model.get_config()["settings"]["roi_canonical"] == pytest.approx(17.92)  # the number, not "scaled"
    with pytest.raises(ConfigError, match="needs the model's input size"):
        FasterRCNNModel(fpn_model.backbone, 2, input_size=None, **options)


def test_roi_canonical_from_the_command_line(capsys):
    # a bad value is refused in one line before any data is read; "scaled" passes the checks
    # (the run then stops at the missing data)
    args = ["instance", "train", "--data", "/nonexistent-shapes", "--fpn", "--rcnn-options"]
    assert main([*args, "roi_canonical=-1"]) == 2
    assert "roi_canonical must be a positive box side in pixels or 'scaled', got -1" in capsys.readouterr().err
    assert main([*args, "roi_canonical=scaled,post_nms_test=30"]) == 2
    assert "instance data not found" in capsys.readouterr().err
    assert InstanceConfig(data="x", fpn=True, rcnn_options={"roi_canonical": "scaled"}).rcnn_settings()[
        "roi_canonical"] == "scaled"
    assert main(["detect", "train", "--data", "/nonexistent-voc", "--detector", "faster-rcnn", "--fpn",
                 "--rcnn-options", "roi_canonical=0"]) == 2
    assert "roi_canonical must be" in capsys.readouterr().err


def test_fpn_options_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="one anchor size per RPN level"):
        build_faster_rcnn("resnet18", 2, **(TINY_FPN | {"anchor_sizes": [16, 32, 64]}))
    with pytest.raises(ConfigError, match="--fpn is an option of --detector faster-rcnn"):
        DetectConfig(data="x", fpn=True).validate()
    with pytest.raises(ConfigError, match="P2..P6"):
        DetectConfig(data="x", detector="faster-rcnn", fpn=True, anchor_sizes=[16, 32]).validate()
    DetectConfig(data="x", detector="faster-rcnn", fpn=True).validate()
    assert "anchor_scales" not in DetectConfig(data="x", detector="faster-rcnn", fpn=True).rcnn_settings()
    assert InstanceConfig(data="x", fpn=True, anchor_scales=[1, 1.5]).rcnn_settings()["anchor_scales"] == [1, 1.5]
    with pytest.raises(ConfigError, match="anchor scales must be positive"):
        DetectConfig(data="x", detector="faster-rcnn", anchor_scales=[-1]).validate()
    with pytest.raises(ConfigError, match="--model mask-rcnn"):
        InstanceConfig(data="x", model="unet-watershed", fpn=True).validate()
    assert InstanceConfig(data="x", fpn=True, fpn_width=64).fpn_width == 64
    with pytest.raises(ConfigError, match="multi-scale outputs"):
        from foveal.detection.faster_rcnn import _fpn_levels

        _fpn_levels("lenet5", {"P1": None, "P2": None})


# The tiny backbones here are width 16, not 8: TensorFlow 2.21's oneDNN corrupts the heap in the
# backward pass of a stride-2 1x1 convolution on fewer than 16 channels (a ResNet's shortcut at
# width 8) when the batch size changes between graph-mode steps; docs/fpn-onednn-crash.md.


@pytest.mark.slow  # one epoch from the command line, evaluate, two exports with parity (261 s at load ~30)
def test_fpn_from_the_command_line_through_training_and_export(tmp_path, capsys):
    from foveal.models.io import read_card

    from .test_detect_run import make_shapes

    data = make_shapes(tmp_path / "voc", count=12)
    assert main(["detect", "train", "--data", str(data), "--output", str(tmp_path / "runs"), "--name", "fpn",
                 "--detector", "faster-rcnn", "--fpn", "--fpn-width", "16", "--image-size", "64",
                 "--backbone-options", "width=16", "--head-width", "16", "--roi-batch", "32", "--rpn-batch", "64",
                 "--anchor-sizes", "8", "16", "32", "64", "128", "--epochs", "1", "--batch-size", "4",
                 "--val-split", "0.2", "--no-progress", "--report-images", "1",
                 "--rcnn-options", "pre_nms_train=100,post_nms_train=60,post_nms_test=30"]) == 0
    run = tmp_path / "runs" / "fpn"
    card = read_card(run / "best.keras")
    assert card.training["fpn"] is True and card.training["level"] == "FPN P2-P6"
    assert card.training["anchor_sizes"] == [8, 16, 32, 64, 128]
    assert card.training["roi_canonical"] == 224.0  # the FPN paper's level rule, the default
    saved = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run / "best.keras"), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["coco"] == pytest.approx(saved["coco"], abs=1e-6)
    for fmt, suffix in (("savedmodel", ""), ("onnx", ".onnx")):
        assert main(["export", str(run / "best.keras"), "--format", fmt, "--output", str(tmp_path / f"m{suffix}"),
                     "--data", str(data), "--split", "val", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"], report
        assert report["accuracy"]["export"] == pytest.approx(report["accuracy"]["keras"], abs=1e-6)


@pytest.mark.slow  # Mask R-CNN with --fpn from the command line, one epoch on generated shapes
def test_fpn_mask_rcnn_from_the_command_line(tmp_path):
    from foveal.models.io import read_card

    assert main(["datasets", "synth", "shapes", "--output", str(tmp_path / "shapes"), "--counts", "8", "4", "4",
                 "--size", "64", "--seed", "1"]) == 0
    assert main(["instance", "train", "--data", str(tmp_path / "shapes"), "--output", str(tmp_path / "runs"),
                 "--name", "r", "--fpn", "--fpn-width", "16", "--image-size", "64", "--epochs", "1",
                 "--batch-size", "4", "--backbone-options", "width=16", "--head-width", "16", "--mask-width", "8",
                 "--mask-convs", "1", "--roi-batch", "32", "--rpn-batch", "64", "--no-progress",
                 "--report-images", "1", "--rcnn-options",
                 "pre_nms_train=100,post_nms_train=60,post_nms_test=30,roi_canonical=scaled"]) == 0
    card = read_card(tmp_path / "runs" / "r" / "best.keras")
    assert card.training["roi_canonical"] == pytest.approx(224 * 64 / 800)  # "scaled", resolved for 64 x 64
    assert card.training["fpn"] is True and card.training["anchor_sizes"] == [16, 32, 64, 128, 256]
    assert card.training["anchor_scales"] == pytest.approx(list(OCTAVE_SCALES))
    assert json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())["mask"]
