"""Real + extra (e.g. synthetic) training images mixed at a ratio: counts, order, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveal.detection.config import DetectConfig
from foveal.detection.pipeline import mixed_counts
from foveal.detection.task import DetectTask
from foveal.errors import ConfigError, DataError


def write_source(root: Path, count: int, levels: range, box: tuple[int, int, int, int], name: str = "thing") -> Path:
    """A COCO file of ``count`` flat 32x32 images (grey level ``levels[i]``: it names the image)
    with one ``name`` box each at ``box``."""
    root.mkdir(parents=True)
    images, anns = [], []
    for i in range(count):
        Image.fromarray(np.full((32, 32, 3), levels[i], np.uint8)).save(root / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 32, "height": 32})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": list(box), "area": box[2] * box[3],
                     "iscrowd": 0})
    path = root / "instances_train.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": name}]}))
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    real = write_source(root / "real", 12, range(0, 120, 10), (2, 2, 10, 10))  # grey 0..110, box at the top left
    extra = write_source(root / "synth", 5, range(200, 250, 10), (16, 16, 12, 12))  # grey 200..240, bottom right
    return real, extra


def epochs(cfg: DetectConfig, seed: int, count: int = 2) -> list[list[tuple[int, tuple[float, ...]]]]:
    """Per epoch, the (grey level, first box) of every training image in the order it came."""
    task = DetectTask()
    data = task.load_data(cfg)
    train, _ = task.pipelines(cfg, data, seed=seed)
    out = []
    for _ in range(count):
        seen = []
        for images, targets in train:
            for image, boxes in zip(images.numpy(), targets["boxes"].numpy()):
                seen.append((int(round(image.mean())), tuple(np.round(boxes[0] * 32).tolist())))
        out.append(seen)
    return out


def mixed_config(real: Path, extra: Path, seed: int = 1) -> DetectConfig:
    return DetectConfig(data=str(real), extra_data=str(extra), extra_ratio=0.4, val_split=0.0, test_split=0.0,
                        image_size=[32], batch_size=6, augment="none", seed=seed)


@pytest.fixture(scope="module")
def two_epochs(sources):
    return epochs(mixed_config(*sources), seed=1)


def test_the_mixed_pipeline_draws_both_sources_at_the_ratio(sources, two_epochs):
    """ratio 0.4 with 12 real images: each epoch has the 12 real images once and round(12 * 0.4 /
    0.6) = 8 extra ones (the 5 synthetic images once, 3 of them twice), interleaved, each with
    its own box, in a new order each epoch; the steps per epoch count both; --extra-ratio
    outside (0, 1) is refused."""
    real, extra = sources
    cfg = mixed_config(real, extra)
    assert mixed_counts(12, 0.4) == (12, 8)
    data = DetectTask().load_data(cfg)
    assert DetectTask().steps_per_epoch(cfg, data) == 4  # ceil(20 / 6)
    for seen in two_epochs:
        levels = [level for level, _ in seen]
        real_levels = sorted(v for v in levels if v < 150)
        extra_levels = [v for v in levels if v >= 150]
        assert real_levels == list(range(0, 120, 10)) and len(extra_levels) == 8
        assert set(extra_levels) == set(range(200, 250, 10)) and max(np.unique(extra_levels, return_counts=True)[1]) == 2
        for level, box in seen:  # boxes travel with their images
            assert box == ((2, 2, 12, 12) if level < 150 else (16, 16, 28, 28))
        positions = [i for i, v in enumerate(levels) if v >= 150]
        assert positions != list(range(12, 20)) and positions != list(range(8))  # interleaved, not appended
    assert two_epochs[0] != two_epochs[1]  # a new order every epoch
    with pytest.raises(ConfigError, match="extra_ratio must be in"):
        DetectConfig(data=str(real), extra_data=str(extra), extra_ratio=1.0).validate()


@pytest.mark.slow
def test_the_mixed_pipeline_is_deterministic_for_a_seed(sources, two_epochs):
    """A second pipeline with the same seed gives the same two epochs, image for image."""
    assert epochs(mixed_config(*sources), seed=1) == two_epochs


def test_extra_data_with_unknown_classes_or_no_train_split_is_refused(sources, tmp_path):
    real, _ = sources
    other = write_source(tmp_path / "other", 2, range(2), (1, 1, 5, 5), name="giraffe")
    cfg = DetectConfig(data=str(real), extra_data=str(other), val_split=0.0, test_split=0.0)
    with pytest.raises(DataError, match="giraffe"):
        DetectTask().load_data(cfg)


@pytest.mark.slow
def test_detect_train_mixes_extra_data_from_the_cli(tmp_path, capsys):
    """`foveal detect train --extra-data ... --extra-ratio 0.5` trains on both sources (twice the
    steps of the real images alone), records them in the config, the model card and the report,
    and scores on --data's test split only."""
    from foveal.cli.main import main
    from foveal.models.io import read_card

    from .test_detect_run import make_shapes

    real = make_shapes(tmp_path / "real", count=12)
    extra = make_shapes(tmp_path / "extra", count=8, seed=1)
    code = main(["detect", "train", "--data", str(real), "--extra-data", str(extra), "--extra-ratio", "0.5",
                 "--image-size", "64", "--backbone-options", "width=16", "--batch-size", "3", "--epochs", "1",
                 "--anchors", "2", "--val-split", "0", "--report-images", "1", "--output", str(tmp_path / "runs"),
                 "--name", "mixed", "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "each epoch mixes the 9 real training images with 9 of them (--extra-ratio 0.5)" in out.out + out.err
    run = tmp_path / "runs" / "mixed"
    assert "extra_data:" in (run / "config.yaml").read_text() and "extra_ratio: 0.5" in (run / "config.yaml").read_text()
    card = read_card(run / "best.keras")
    assert card.training["extra_data"] == str(extra) and card.training["extra_ratio"] == 0.5
    assert json.loads((run / "metrics.json").read_text())["num_images"] == 3  # real's test split (3 of 12)
    assert str(extra) in (run / "report.html").read_text()
