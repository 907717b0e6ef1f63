"""The box augmentation of both box pipelines, against outputs recorded before they shared one module.

``box_augment_record.json`` holds what the localization and detection pipelines produced, for
fixed seeds on a tiny synthetic dataset, when each task still had its own augmentation code
(recorded by running this file as a script on the code before that change). Boxes and classes
are kept whole; images as 8x8-pixel block means, which a change of draw or resampling moves.

Detection is unchanged to the record. Localization is unchanged except the pixels of its crop:
the same windows are drawn and the boxes are the recorded ones, but the window is now
resampled with detection's exact pixel-centre mapping (``sample_window``) instead of
``crop_and_resize`` on the window's corners, which put the picture up to half a pixel off its
box (``tests/localization/test_pipeline.py`` measures that).

Re-record only on purpose: ``.venv/bin/python tests/detection/test_box_augment_record.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from foveal.data.boxes import BoxedImages

RECORD = Path(__file__).with_name("box_augment_record.json")
SIZE = 32
EPOCHS = 2
LOCALIZATION_CASES = {"flip,brightness=0.3,contrast=0.4": 2, "standard": 4, "crop=0.6": 1}
# Specs with the localizer's crop: their images were resampled differently when recorded.
RESAMPLED = {"standard", "crop=0.6"}
DETECTION_CASES = {"detect": 4, "light,vflip": 2, "flip,crop=0.6,translate=0.2,saturation=0.5,hue=0.1": 7}


def tiny_boxes(folder: Path) -> BoxedImages:
    """Seven noisy 48x40 images with bright boxes (one to three each, one image with none)."""
    rng = np.random.default_rng(13)
    specs = [[(4, 6, 20, 30, 0)], [(10, 2, 44, 18, 1), (2, 20, 14, 38, 0)], [],
             [(20, 10, 40, 36, 1)], [(0, 0, 16, 12, 0), (30, 25, 48, 40, 1), (18, 14, 28, 22, 0)],
             [(6, 8, 42, 34, 1)], [(12, 16, 24, 28, 0)]]
    paths, boxes, labels = [], [], []
    for i, objects in enumerate(specs):
        pixels = rng.integers(0, 60, (40, 48, 3)).astype(np.uint8)
        for x0, y0, x1, y1, label in objects:
            pixels[y0:y1, x0:x1] = (200 + 20 * label, 150, 90)
        path = folder / f"img{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        boxes.append(np.array([o[:4] for o in objects], np.float32).reshape(-1, 4))
        labels.append(np.array([o[4] for o in objects], np.int32))
    return BoxedImages(paths=np.array(paths), boxes=boxes, labels=labels, class_names=["a", "b"],
                       image_sizes=np.array([[48, 40]] * len(specs)), origin="tiny")


def _blocks(images: np.ndarray) -> np.ndarray:
    n, h, w, c = images.shape
    return images.reshape(n, h // 8, 8, w // 8, 8, c).mean(axis=(2, 4))


def localization_outputs(data: BoxedImages, spec: str, seed: int) -> list[dict]:
    """Every epoch's single batch of the localization pipeline, summarised."""
    from foveal.localization.pipeline import make_localization_pipeline

    ds = make_localization_pipeline(data, image_size=(SIZE, SIZE), channels=3, batch_size=len(data),
                                    training=True, augment=spec, seed=seed)
    out = []
    for _ in range(EPOCHS):
        images, targets = next(iter(ds))
        out.append({"blocks": _blocks(images.numpy()), "box": targets["box"].numpy(),
                    "class": targets["class"].numpy()})
    return out


def detection_outputs(data: BoxedImages, spec: str, seed: int) -> list[dict]:
    """Every epoch's single batch of the detection pipeline, summarised."""
    from foveal.detection.pipeline import make_detection_pipeline

    ds = make_detection_pipeline(data, image_size=SIZE, batch_size=len(data), training=True, augment=spec,
                                 seed=seed, max_boxes=4)
    out = []
    for _ in range(EPOCHS):
        images, targets = next(iter(ds))
        out.append({"blocks": _blocks(images.numpy()), "boxes": targets["boxes"].numpy(),
                    "classes": targets["classes"].numpy()})
    return out


def _produce(folder: Path) -> dict:
    data = tiny_boxes(folder)
    return {"localization": {spec: localization_outputs(data, spec, seed) for spec, seed in LOCALIZATION_CASES.items()},
            "detection": {spec: detection_outputs(data, spec, seed) for spec, seed in DETECTION_CASES.items()}}


def _fresh_global_seed() -> None:
    """The record was made in a fresh process (no global TensorFlow seed); a test that ran
    before in this worker may have set one, which changes the seeded shuffle's order."""
    import tensorflow as tf

    tf.random.set_seed(None)


def _recorded() -> dict:
    return json.loads(RECORD.read_text())


def _compare(got: list[dict], recorded: list[dict], *, image_atol: float, images: bool = True) -> None:
    for epoch, (now, then) in enumerate(zip(got, recorded, strict=True)):
        for key, value in now.items():
            if key == "blocks" and not images:
                continue
            atol = image_atol if key == "blocks" else 2e-6
            np.testing.assert_allclose(value, np.array(then[key]), atol=atol, rtol=0,
                                       err_msg=f"epoch {epoch}, {key}")


def test_detection_pipeline_matches_the_record(tmp_path):
    _fresh_global_seed()
    data = tiny_boxes(tmp_path)
    for spec, seed in DETECTION_CASES.items():
        _compare(detection_outputs(data, spec, seed), _recorded()["detection"][spec], image_atol=2e-3)


def test_localization_pipeline_matches_the_record(tmp_path):
    _fresh_global_seed()
    data = tiny_boxes(tmp_path)
    for spec, seed in LOCALIZATION_CASES.items():
        _compare(localization_outputs(data, spec, seed), _recorded()["localization"][spec], image_atol=2e-3,
                 images=spec not in RESAMPLED)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        produced = _produce(Path(tmp))
    RECORD.write_text(json.dumps(produced, separators=(",", ":"),
                                 default=lambda a: np.round(a, 3 if a.ndim == 4 else 6).tolist()) + "\n")
    print(f"wrote {RECORD}", file=sys.stderr)
