"""Every registered architecture, found by iterating the registry (nobody lists them here):
headless build, measured feature pyramid, ``.keras`` round trip and one training step.

Each architecture is built at its registry ``smoke`` setting (a small input and width) and
runs in the default tier unless that setting says ``slow``; an architecture registered
without one is built at its full default size, in the slow tier. One model per architecture
is shared by the four tests (module-scoped fixture): building is most of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest

from foveal.models import MODELS, build_model
from foveal.models.pyramid import pyramid_levels

#: Second input side for the real (not symbolic) stride check: a multiple of 32, so every
#: stride-2 layer's rounding cancels.
STEP = 64


def _cases() -> list[Any]:
    cases = []
    for entry in MODELS:
        smoke = entry.meta.get("smoke")
        if smoke is None:
            cases.append(pytest.param((entry.name, tuple(entry.meta["input_shape"]), {}),
                                      marks=pytest.mark.slow, id=entry.name))
        else:
            marks = [pytest.mark.slow] if smoke.get("slow") else []
            cases.append(pytest.param((entry.name, tuple(smoke["input_shape"]), dict(smoke["options"])),
                                      marks=marks, id=entry.name))
    return cases


@dataclass
class Built:
    name: str
    shape: tuple[int, int, int]
    model: keras.Model

    def images(self, n: int = 2, grow: int = 0, seed: int = 0) -> np.ndarray:
        h, w, c = self.shape
        return np.random.default_rng(seed).uniform(0, 255, (n, h + grow, w + grow, c)).astype("float32")


@pytest.fixture(scope="module", params=_cases())
def built(request) -> Built:
    name, shape, options = request.param
    keras.backend.clear_session()
    # Seeded weights: a tiny variant's narrow branches can start as dead ReLUs (one unseeded
    # GoogLeNet in CI left 2 of 19 weights unmoved by a step), so every run builds the same model.
    keras.utils.set_random_seed(0)
    # Any input size: the pyramid test feeds two sizes through the same weights.
    model = build_model(name, num_classes=3, input_shape=(None, None, shape[2]), include_top=False, **options)
    yield Built(name, shape, model)
    keras.backend.clear_session()


def test_registry_covers_every_architecture_in_a_tier():
    names = [case.values[0][0] for case in _cases()]
    assert names == MODELS.names() and len(names) >= 24


def test_headless_build_gives_a_feature_map(built):
    model = built.model
    assert len(model.outputs) == 1 and len(model.output.shape) == 4
    features = np.asarray(model(built.images(), training=False))
    assert features.shape[0] == 2 and min(features.shape[1:]) >= 1 and np.isfinite(features).all()


def test_pyramid_strides_are_the_measured_ones(built):
    levels = pyramid_levels(built.model, input_size=built.shape[:2])
    strides = [level.stride for level in levels]
    assert len(levels) >= 2 and strides == sorted(set(strides))
    assert [level.name for level in levels] == [f"P{s.bit_length() - 1}" for s in strides]
    assert levels[-1].tensor is built.model.output  # the headless output is the coarsest level
    # Measured again by running real images of two sizes through the level tensors.
    probe = keras.Model(built.model.input, [level.tensor for level in levels])
    small = probe(built.images(1), training=False)
    large = probe(built.images(1, grow=STEP), training=False)
    for level, a, b in zip(levels, small, large):
        grew = (b.shape[1] - a.shape[1], b.shape[2] - a.shape[2])
        assert grew == (STEP // level.stride, STEP // level.stride), (level.name, level.layer, a.shape, b.shape)


def test_save_and_load_round_trip(built, tmp_path):
    # Plain Keras saving (a feature extractor has no classes for a model card); safe mode on,
    # so every custom layer must deserialise from its config.
    path = tmp_path / f"{built.name}.keras"
    built.model.save(path)
    loaded = keras.saving.load_model(path)
    x = built.images(seed=1)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(built.model(x, training=False)),
                               rtol=1e-5, atol=1e-5)
    # the pyramid is measured on the loaded graph too: nothing about it is stored
    before = [(lv.name, lv.layer) for lv in pyramid_levels(built.model, input_size=built.shape[:2])]
    assert [(lv.name, lv.layer) for lv in pyramid_levels(loaded, input_size=built.shape[:2])] == before


def test_one_training_step(built):
    model = built.model
    x = built.images(seed=2)
    target = np.random.default_rng(3).normal(size=(2, *model(x).shape[1:])).astype("float32")
    # Eager: the step is Keras' own train_step; tracing it would cost more than the step.
    model.compile(keras.optimizers.SGD(0.01), loss="mse", run_eagerly=True)
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(x, target)
    assert np.isfinite(loss)
    changed = [not np.array_equal(b, np.asarray(w)) for b, w in zip(before, model.trainable_weights)]
    # The gradient reaches both ends; a few narrow branches of a tiny variant may be dead ReLUs
    # (GoogLeNet's 5x5 reductions have one filter at width 1/16), so not every weight must move.
    assert changed[0] and changed[-1] and np.mean(changed) >= 0.9, [
        w.path for w, c in zip(model.trainable_weights, changed) if not c]
