"""Mask targets (TensorFlow) against NumPy, the paste/target round trip, instance-aware augmentation,
and COCO box + mask AP of perfect and perturbed predictions against pycocotools on written JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.instance.masks import encode_rle, mask_box, mask_targets, paste_masks


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return ((xs - cx) ** 2 + (ys - cy) ** 2 <= r * r).astype(np.uint8)


def test_mask_targets_sample_pixel_centres():
    rng = np.random.default_rng(0)
    masks = (rng.random((2, 28, 28, 3)) > 0.5).astype(np.uint8)
    rois = np.array([[[0, 0, 28, 28], [0, 0, 28, 28]], [[0, 0, 28, 28], [0, 0, 28, 28]]], np.float32)
    index = np.array([[2, 0], [1, 1]])
    out = mask_targets(masks, rois, index, 28).numpy()
    # a RoI covering the whole map at its own resolution reads the mask back exactly
    np.testing.assert_array_equal(out[0, 0], masks[0, ..., 2])
    np.testing.assert_array_equal(out[1, 1], masks[1, ..., 1])
    # a 14-pixel RoI upsampled x2: each cell is the pixel its centre falls in (NumPy reference)
    roi = np.array([[[5, 3, 19, 17]]], np.float32)
    up = mask_targets(masks[:1], roi, np.array([[0]]), 28).numpy()[0, 0]
    centres = 3 + (np.arange(28) + 0.5) / 2.0
    cols = 5 + (np.arange(28) + 0.5) / 2.0
    ref = masks[0, np.floor(centres).astype(int)][:, np.floor(cols).astype(int), 0]
    np.testing.assert_array_equal(up, ref)


def test_target_then_paste_returns_the_mask():
    """The 28x28 target of a box, pasted back into that box, is the mask again (same conventions)."""
    mask = _disc(64, 80, 30.3, 27.8, 13.0)
    box = mask_box(mask)
    target = mask_targets(mask[None, ..., None], box[None, None], np.zeros((1, 1), np.int32), 28).numpy()[0]
    pasted = paste_masks(target, box[None], 64, 80)[0]
    iou = (pasted & mask.astype(bool)).sum() / (pasted | mask.astype(bool)).sum()
    assert iou > 0.95


def test_augmentation_moves_masks_with_boxes(tmp_path):
    """Masks in their boxes' frames, augmented with their boxes, paste back where the same draw
    moves the full-size masks (the image's own resampling, sample_window, as the reference)."""
    import tensorflow as tf

    from foveal.instance.masks import box_mask
    from foveal.instance.pipeline import augment_instances

    dense = np.stack([_disc(96, 96, 30, 30, 12), _disc(96, 96, 70, 60, 18), _disc(96, 96, 88, 88, 6)], -1)
    pixel_boxes = np.stack([mask_box(dense[..., k]) for k in range(3)])
    masks = np.stack([box_mask(dense[..., k], pixel_boxes[k]) for k in range(3)])
    boxes = pixel_boxes / 96.0
    image = np.zeros((96, 96, 3), np.float32)
    seen_flip = seen_drop = seen_clip = False
    for s in (0, 1, 2, 3, 5, 9):
        spec = "flip,crop=0.5,scale=0.3,min_visible=0.5"
        img, m, b, c = augment_instances(image, masks, boxes, tf.constant([0, 1, 2]), tf.constant([s, 7]), spec)
        # the reference: the same draw on the full-size masks, given as the image's three channels
        ref, _, _, rc = augment_instances(dense.astype(np.float32) * 255.0, masks, boxes, tf.constant([0, 1, 2]),
                                          tf.constant([s, 7]), spec)
        m, b, c, ref = m.numpy(), b.numpy() * 96, c.numpy(), ref.numpy() / 255.0
        assert m.shape[1:] == (64, 64) and m.shape[0] == len(b) == len(c) and img.shape == (96, 96, 3)
        np.testing.assert_array_equal(c, rc.numpy())
        seen_drop |= len(c) < 3
        pasted = paste_masks(m.astype(np.float32) / 255.0, b, 96, 96)
        for k in range(len(c)):  # the mask in its new box covers the same pixels as the moved full-size mask
            truth = ref[..., c[k]] >= 0.5
            iou = (pasted[k] & truth).sum() / max((pasted[k] | truth).sum(), 1)
            assert iou > 0.9, (s, k, iou)
            seen_clip |= bool(b[k].min() <= 0.01 or b[k].max() >= 95.99)
            if c[k] == 0:
                seen_flip |= b[k][0] > 48
    assert seen_flip and seen_drop and seen_clip


@pytest.mark.slow  # tracing tf.data's generator and maps: ~25 s on the loaded machine
def test_pipeline_batches_pad_and_keep_instances(tmp_path):
    from foveal.data.synth.shapes import make_shapes
    from foveal.instance.data import load_instance_splits
    from foveal.instance.pipeline import make_instance_pipeline

    make_shapes(tmp_path / "s", counts=(6, 0, 0), size=(48, 48), seed=1)
    data = load_instance_splits(tmp_path / "s", val_split=0, test_split=0)["train"]
    ds = make_instance_pipeline(data, image_size=(32, 32), batch_size=3, training=False, max_instances=5)
    images, t = next(iter(ds))
    assert images.shape == (3, 32, 32, 3) and t["masks"].shape == (3, 5, 64, 64) and t["boxes"].shape == (3, 5, 4)
    for i in range(3):
        n = len(data.boxes[i])
        assert (t["classes"].numpy()[i] >= 0).sum() == n and t["masks"].numpy()[i, n:].sum() == 0
        np.testing.assert_allclose(t["boxes"].numpy()[i, :n], data.boxes[i] / 48.0, atol=1e-6)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from foveal.data.synth.shapes import make_shapes
    from foveal.instance.data import load_instance_splits

    root = tmp_path_factory.mktemp("score")
    make_shapes(root / "s", counts=(8, 0, 0), size=(64, 64), seed=2)
    return load_instance_splits(root / "s", val_split=0, test_split=0)["train"]


def _predictions(data, rng, perturb: bool):
    from foveal.instance.scoring import ImageInstances

    preds = []
    for i in range(len(data)):
        masks = data.masks(i).astype(bool)
        boxes, rles, scores = [], [], []
        for k in range(masks.shape[-1]):
            m = masks[..., k].copy()
            if perturb:
                m = np.roll(m, int(rng.integers(-3, 4)), axis=int(rng.integers(2)))
            boxes.append(mask_box(m) if m.any() else data.boxes[i][k])
            rles.append(encode_rle(m))
            scores.append(float(rng.random()))
        classes = data.labels[i].copy()
        if perturb and len(classes):
            classes[0] = (classes[0] + 1) % 3
        preds.append(ImageInstances(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores), classes,
                                    0.0, rles))
    return preds


def test_perfect_predictions_score_one(scored):
    from foveal.instance.scoring import score_instances

    metrics = score_instances(scored, _predictions(scored, np.random.default_rng(0), False))
    assert metrics["mask"]["AP"] == pytest.approx(1.0) and metrics["box"]["AP50"] == pytest.approx(1.0)


def test_box_and_mask_ap_equal_pycocotools_on_written_json(scored, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from foveal.instance.scoring import score_instances, to_coco_results

    preds = _predictions(scored, np.random.default_rng(1), True)
    metrics = score_instances(scored, preds)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt = scored.coco_dict()
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(to_coco_results(preds, [c["id"] for c in gt["categories"]])))
    coco = COCO(str(gt_path))
    for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
        ev = COCOeval(coco, coco.loadRes(str(dt_path)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert 0.05 < ev.stats[0] < 0.99
        np.testing.assert_allclose([metrics[kind][k] for k in ("AP", "AP50", "AP75", "AR100")],
                                   ev.stats[[0, 1, 2, 8]], atol=1e-6)


def test_drawn_instances_tint_the_mask():
    from foveal.instance.predict import PALETTE, draw_instances
    from foveal.instance.scoring import ImageInstances

    mask = _disc(40, 40, 20, 20, 8).astype(bool)
    inst = ImageInstances(np.array([[12.0, 12, 28, 28]]), np.array([0.9]), np.array([0]), 0.5, [encode_rle(mask)])
    drawn = draw_instances(np.zeros((40, 40, 3), np.uint8), inst, ["circle"])
    assert drawn.shape == (40, 40, 3)
    assert tuple(drawn[20, 20]) == tuple(int(round(0.45 * v)) for v in PALETTE[0])
    Image.fromarray(drawn)  # a valid image


def test_mask_loss_is_the_true_class_bce_on_foreground_rois():
    from foveal.instance.mask_rcnn import mask_loss

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 3, 4, 4, 3)).astype(np.float32)
    labels = np.array([[2, 0, -1], [3, 1, 0]])
    targets = (rng.random((2, 3, 4, 4)) > 0.5).astype(np.float32)
    terms = []
    for b in range(2):
        for r in range(3):
            if labels[b, r] > 0:
                x, t = logits[b, r, :, :, labels[b, r] - 1], targets[b, r]
                p = 1 / (1 + np.exp(-x))
                terms.append(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    assert float(mask_loss(logits, labels, targets)) == pytest.approx(np.mean(terms), rel=1e-5)
    assert float(mask_loss(logits, np.zeros((2, 3), np.int32), targets)) == 0.0


def test_sampled_rois_name_their_ground_truth_foreground_first():
    from foveal.ops import rcnn

    gt = np.array([[[0, 0, 20, 20], [30, 30, 60, 50], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[2, 0, -1]])
    proposals = np.array([[[1, 1, 21, 19], [31, 29, 59, 52], [70, 70, 90, 90], [2, 0, 18, 22]]], np.float32)
    out = rcnn.sample_rois(proposals, np.ones((1, 4), bool), gt, classes, classes >= 0, batch=6,
                           positive_fraction=0.5)
    labels, index, rois = out["labels"].numpy()[0], out["gt_index"].numpy()[0], out["rois"].numpy()[0]
    fg = labels > 0
    assert fg.sum() == 3 and fg[:3].all()  # at most batch * fraction foreground rows, first
    for k in np.flatnonzero(fg):
        assert labels[k] - 1 == classes[0, index[k]]
        assert rcnn.pairwise_iou(rois[k:k + 1], gt[0, index[k]:index[k] + 1]).numpy()[0, 0] >= 0.5


def test_targets_from_box_frames_match_the_full_size_masks():
    """The mask head's targets cut from 64x64 masks in their boxes' frames agree with the ones cut
    from full-size masks, for RoIs around, inside and past their boxes; a frame read back is exact."""
    from foveal.instance.masks import box_mask, reframe_box_masks

    dense = np.stack([_disc(120, 100, 40.3, 50.2, 22.0), _disc(120, 100, 70, 30, 9.5),
                      _disc(120, 100, 80, 100, 30.0)], -1)  # the last one cut by the image's edge
    boxes = np.stack([mask_box(dense[..., k]) for k in range(3)])
    framed = np.stack([box_mask(dense[..., k], boxes[k]) for k in range(3)])
    np.testing.assert_array_equal(reframe_box_masks(framed, np.tile([[0.0, 0.0, 1.0, 1.0]], (3, 1))).numpy(), framed)
    rng = np.random.default_rng(4)
    index = np.repeat(np.arange(3), 20)[None]
    size = (boxes[:, 2:] - boxes[:, :2])[index[0]]
    jitter = rng.uniform(-0.25, 0.25, (60, 4)) * np.tile(size, 2)
    rois = (boxes[index[0]] + jitter).astype(np.float32)[None]
    full = mask_targets(dense[None], rois, index, 28).numpy()
    cut = mask_targets(framed[None], rois, index, 28, gt_boxes=boxes[None]).numpy()
    agree = (full == cut).mean(axis=(2, 3))[0]
    assert agree.min() > 0.95 and agree.mean() > 0.99, (agree.min(), agree.mean())  # edge cells near 0.5 differ
    assert full.sum() > 1000
