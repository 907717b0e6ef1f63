"""``foveal train --extra-data DIR --extra-ratio R``: a second labelled source mixed into every
epoch at a ratio (counts per epoch, classes matched by name, replay on resume, refusals, a run
from the CLI)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from foveal.classification.task import ClassifyTask
from foveal.config import TrainConfig
from foveal.data.epochs import mixed_counts
from foveal.errors import ConfigError, DataError


def write_npz(path: Path, levels: range, labels: list[int], names: list[str]) -> Path:
    """Flat 8x8 gray images whose level names the image, with ``labels`` in class ``names``."""
    images = np.stack([np.full((8, 8), level, np.uint8) for level in levels])
    np.savez(path, x=images, y=np.array(labels), class_names=np.array(names))
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("extra")
    real = write_npz(root / "real.npz", range(0, 120, 10), [0, 1] * 6, ["cat", "dog"])  # levels 0..110
    # the extra set names its classes the other way round: "dog" is its label 0
    extra = write_npz(root / "synth.npz", range(200, 250, 10), [0, 0, 0, 1, 1], ["dog", "cat"])
    return real, extra


def config(real: Path, extra: Path, **more) -> TrainConfig:
    options = dict(data=str(real), extra_data=str(extra), extra_ratio=0.4, val_split=0.0, test_split=0.0,
                   image_size=[8], channels=1, batch_size=6, augment="none", seed=1, progress=False)
    return TrainConfig(**(options | more))


def epochs(cfg: TrainConfig, count: int = 2, start_epoch: int | None = 0) -> list[list[tuple[int, int]]]:
    """Per epoch, the (gray level, class) of every training image in the order it came."""
    task = ClassifyTask()
    data = task.load_data(cfg)
    data.extra["input_shape"] = (8, 8, 1)
    train, _ = task.pipelines(cfg, data, seed=cfg.seed, start_epoch=start_epoch)
    steps = task.steps_per_epoch(cfg, data)
    batches = list(train.take(steps * count))
    out = []
    for e in range(count):
        seen = []
        for images, labels in batches[e * steps:(e + 1) * steps]:
            seen += [(int(round(float(x.mean()))), int(np.argmax(y))) for x, y in zip(images.numpy(), labels.numpy())]
        out.append(seen)
    return out


def test_each_epoch_mixes_both_sources_at_the_ratio_and_replays(sources):
    """ratio 0.4 with 12 real images: every epoch holds the 12 once and round(12 * 0.4 / 0.6) = 8
    extra ones (the 5 synthetic images once, 3 of them twice), interleaved, relabelled into
    --data's classes by name, in a new order each epoch; a resumed epoch is the same epoch."""
    cfg = config(*sources)
    assert mixed_counts(12, 0.4) == (12, 8)
    task = ClassifyTask()
    assert task.steps_per_epoch(cfg, task.load_data(cfg)) == 4  # ceil(20 / 6)
    whole = epochs(cfg)
    truth = {**{level: i % 2 for i, level in enumerate(range(0, 120, 10))},
             **{200: 1, 210: 1, 220: 1, 230: 0, 240: 0}}  # synth "dog" (its 0) is --data's 1
    for seen in whole:
        levels = Counter(level for level, _ in seen)
        assert sorted(v for v in levels if v < 150) == list(range(0, 120, 10))
        assert all(levels[v] == 1 for v in range(0, 120, 10))
        extra = {v: n for v, n in levels.items() if v >= 150}
        assert sum(extra.values()) == 8 and set(extra) == set(range(200, 250, 10))
        assert all(cls == truth[level] for level, cls in seen)
        first_extra = [i for i, (level, _) in enumerate(seen) if level >= 150]
        assert first_extra[0] < 12 and first_extra[-1] >= 8  # interleaved, not appended
    assert whole[0] != whole[1]
    assert epochs(cfg, count=1, start_epoch=1)[0] == whole[1]


def test_extra_data_is_refused_clearly(sources, tmp_path):
    real, extra = sources
    other = write_npz(tmp_path / "other.npz", range(4), [0, 1, 0, 1], ["cat", "bird"])
    with pytest.raises(DataError, match=r"other.npz \(--extra-data\).*bird"):
        ClassifyTask().load_data(config(real, other))
    for bad, message in ((dict(extra_ratio=1.0), "extra_ratio"), (dict(oversample=True), "oversample"),
                         (dict(bottleneck=True, freeze="base"), "bottleneck")):
        with pytest.raises(ConfigError, match=message):
            config(real, extra, **bad).validate()
    with pytest.raises(DataError):
        ClassifyTask().load_data(config(real, tmp_path / "missing.npz"))


@pytest.mark.slow
def test_a_run_from_the_command_line_records_the_extra_source(sources, tmp_path):
    from foveal.cli.main import main
    from foveal.models import load_model

    real, extra = sources
    code = main(["train", "--data", str(real), "--extra-data", str(extra), "--extra-ratio", "0.4", "--model",
                 "lenet5", "--image-size", "32", "--channels", "1", "--epochs", "1", "--batch-size", "6",
                 "--val-split", "0", "--test-split", "0.25", "--output", str(tmp_path), "--name", "mixed",
                 "--no-progress", "--no-tensorboard"])
    assert code == 0
    _, card = load_model(tmp_path / "mixed" / "best.keras")
    assert card.training["extra_data"] == str(extra) and card.training["extra_ratio"] == 0.4
