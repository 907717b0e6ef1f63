"""The classic architectures (LeNet-5 as published, AlexNet, VGG, GoogLeNet): parameter counts
against the papers and reference implementations, their special layers against NumPy, and
training, saving and loading on small variants."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ModelError
from foveal.layers import InceptionModule, LocalResponseNormalization
from foveal.models import ModelCard, build_model, load_model, save_model
from foveal.models.auxiliary import AuxiliaryClassifierModel
from foveal.models.classification import alexnet, googlenet, lenet_classic, vgg  # noqa: F401  registers them
from foveal.models.classification.googlenet import GOOGLENET_MODULES, googlenet_parameters
from foveal.models.classification.lenet_classic import LENET5_C3_TABLE, ConnectionTableConv2D
from foveal.models.classification.vgg import dense_to_convolutional


def count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def conv_params(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


# AlexNet, single tower, counted by hand from the layer table (227x227x3, 1000 classes).
ALEXNET_BY_HAND = (
    conv_params(11, 3, 96) + conv_params(5, 96, 256) + conv_params(3, 256, 384)
    + conv_params(3, 384, 384) + conv_params(3, 384, 256)
    + (6 * 6 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
)



def vgg_by_hand(convs: tuple[int, ...], classes: int = 1000) -> int:
    """VGG parameters from Table 1 of Simonyan & Zisserman: 3x3 convolutions, then 7x7x512 -> dense."""
    total, cin = 0, 3
    for count_in_block, filters in zip(convs, (64, 128, 256, 512, 512)):
        for _ in range(count_in_block):
            total, cin = total + conv_params(3, cin, filters), filters
    return total + (7 * 7 * 512 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * classes


# (name, options, total parameters). VGG-16/19: keras.applications VGG16/VGG19; VGG-11/13:
# torchvision vgg11/vgg13 (configurations A and B, same layout), all equal to vgg_by_hand.
# GoogLeNet: no batch norm, biases everywhere, 5x5 kernels, from Table 1 (6,998,552; the
# paper's table totals about 6.8M); its side heads add 3,188,840 + 3,190,888.
# VGG-13 and VGG-19 (0.8 CPU-s each) are in the slow tier: the default tier builds the same VGG builder with
# other block counts (VGG-11, VGG-16 dense and fully convolutional) and checks their figures by hand
# (test_hand_counts_agree_with_the_stated_figures).
FULL_SIZE = [
    ("alexnet", {}, 62_378_344),
    ("vgg11", {}, 132_863_336),
    pytest.param("vgg13", {}, 133_047_848, marks=pytest.mark.slow),
    ("vgg16", {}, 138_357_544),
    pytest.param("vgg19", {}, 143_667_240, marks=pytest.mark.slow),
    ("vgg16", {"fully_convolutional": True}, 138_357_544),
    ("googlenet", {"aux_classifiers": False}, 6_998_552),
    ("googlenet", {}, 13_378_280),
]


def test_hand_counts_agree_with_the_stated_figures():
    assert ALEXNET_BY_HAND == 62_378_344
    assert vgg_by_hand((1, 1, 2, 2, 2)) == 132_863_336  # A, VGG-11
    assert vgg_by_hand((2, 2, 2, 2, 2)) == 133_047_848  # B, VGG-13
    assert vgg_by_hand((2, 2, 3, 3, 3)) == 138_357_544  # D, VGG-16
    assert vgg_by_hand((2, 2, 4, 4, 4)) == 143_667_240  # E, VGG-19
    assert googlenet_parameters(1000) == 6_998_552
    assert googlenet_parameters(1000, aux_classifiers=True) - googlenet_parameters(1000) == 3_188_840 + 3_190_888


@pytest.mark.parametrize("name, options, expected", FULL_SIZE)
def test_full_size_parameter_counts(name, options, expected):
    model = build_model(name, num_classes=1000, **options)
    assert model.count_params() == expected
    assert count(model.trainable_weights) == expected
    if options.get("fully_convolutional"):
        assert model.output_shape == (None, 1, 1, 1000)
    else:
        assert model.output_shape == (None, 1000)


def test_googlenet_module_filters_follow_table_1():
    model = build_model("googlenet", num_classes=1000, aux_classifiers=False)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["pool2"] == (28, 28, 192)
    expected_channels = {"3a": 256, "3b": 480, "4a": 512, "4b": 512, "4c": 512, "4d": 528, "4e": 832,
                         "5a": 832, "5b": 1024}
    for name, *_ in GOOGLENET_MODULES:
        assert shapes[f"inception_{name}"][-1] == expected_channels[name]
    assert shapes["inception_3b"][:2] == (28, 28) and shapes["inception_4e"][:2] == (14, 14)
    assert shapes["inception_5b"][:2] == (7, 7)


# ---------------------------------------------------------------------------- LeNet-5 (1998)

LENET_LAYERS = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "rbf": 840}


def test_lenet5_classic_layer_by_layer_counts_and_shapes():
    model = build_model("lenet5_classic", num_classes=10)
    for name, params in LENET_LAYERS.items():
        assert model.get_layer(name).count_params() == params, name
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["c1"] == (28, 28, 6) and shapes["s2"] == (14, 14, 6) and shapes["c3"] == (10, 10, 16)
    assert shapes["s4"] == (5, 5, 16) and shapes["c5"] == (1, 1, 120) and shapes["f6"] == (84,)
    # The paper's 60,000 trainable parameters: the RBF centres are fixed by default.
    assert count(model.trainable_weights) == 60_000 and model.count_params() == 60_840
    trained_centres = build_model("lenet5_classic", num_classes=10, rbf_trainable=True)
    assert count(trained_centres.trainable_weights) == 60_840


# Table I of LeCun et al. (1998): rows are S2 maps, columns C3 maps, X = connected.
PAPER_TABLE_I = [
    "X   XXX  XXXX XX",
    "XX   XXX  XXXX X",
    "XXX   XXX  X XXX",
    " XXX  XXXX  X XX",
    "  XXX  XXXX XX X",
    "   XXX  XXXX XXX",
]


def test_c3_connection_table_is_the_papers():
    expected = np.array([[c == "X" for c in row] for row in PAPER_TABLE_I])
    layer = ConnectionTableConv2D(LENET5_C3_TABLE, 5)
    np.testing.assert_array_equal(layer.connection_matrix(6), expected)
    assert list(expected.sum(axis=0)) == [3] * 6 + [4] * 9 + [6]


def test_c3_output_maps_depend_only_on_their_connected_inputs():
    layer = ConnectionTableConv2D(LENET5_C3_TABLE, 5, activation=None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 14, 14, 6)).astype("float32")
    base = np.asarray(layer(x))
    connected = layer.connection_matrix(6)
    for i in range(6):
        bumped = x.copy()
        bumped[..., i] += 1.0
        changed = np.abs(np.asarray(layer(bumped)) - base).max(axis=(0, 1, 2)) > 1e-6
        np.testing.assert_array_equal(changed, connected[i])
    # Equivalent to a full convolution whose unconnected kernels are zero.
    full = np.asarray(layer.full_kernel())
    assert np.all(full[:, :, ~connected] == 0)
    reference = keras.ops.conv(x, full, padding="valid") + np.asarray(layer.bias)
    np.testing.assert_allclose(base, np.asarray(reference), rtol=1e-5, atol=1e-5)


def test_lenet5_subsampling_and_rbf_against_numpy():
    model = build_model("lenet5_classic", num_classes=10)
    rng = np.random.default_rng(1)
    s2 = model.get_layer("s2")
    x = rng.normal(size=(2, 28, 28, 6)).astype("float32")
    coefficient, bias = (np.asarray(w) for w in s2.weights)
    sums = x.reshape(2, 14, 2, 14, 2, 6).sum(axis=(2, 4))
    expected_s2 = 1.7159 * np.tanh(2 / 3 * (sums * coefficient + bias))
    np.testing.assert_allclose(np.asarray(s2(x)), expected_s2, rtol=1e-5, atol=1e-5)
    rbf = model.get_layer("rbf")
    f6 = rng.normal(size=(3, 84)).astype("float32")
    centres = np.asarray(rbf.centres)
    assert set(np.unique(centres)) == {-1.0, 1.0}
    expected = ((f6[:, :, None] - centres[None]) ** 2).sum(axis=1)
    np.testing.assert_allclose(np.asarray(rbf(f6)), expected, rtol=1e-5)


def test_lenet5_rbf_centres_stay_fixed_unless_asked():
    x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    y = np.eye(10)[[0, 1, 2, 3]].astype("float32")
    for trainable in (False, True):
        model = build_model("lenet5_classic", num_classes=10, rbf_trainable=trainable)
        model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
        before = np.asarray(model.get_layer("rbf").centres).copy()
        model.train_on_batch(x, y)
        moved = not np.array_equal(before, np.asarray(model.get_layer("rbf").centres))
        assert moved == trainable


def test_alexnet_initialisation_options():
    paper = build_model("alexnet", num_classes=3, input_shape=(67, 67, 3), width=1 / 8)
    biases = {name: np.asarray(paper.get_layer(name).bias) for name in ("conv1", "conv2", "conv3", "fc6", "logits")}
    assert np.all(biases["conv2"] == 1) and np.all(biases["fc6"] == 1)
    assert np.all(biases["conv1"] == 0) and np.all(biases["conv3"] == 0) and np.all(biases["logits"] == 0)
    assert np.std(np.asarray(paper.get_layer("conv3").kernel)) == pytest.approx(0.01, rel=0.1)
    he = build_model("alexnet", num_classes=3, input_shape=(67, 67, 3), width=1 / 8, init="he")
    assert np.all(np.asarray(he.get_layer("conv2").bias) == 0)
    with pytest.raises(ModelError, match="init must be"):
        build_model("alexnet", num_classes=3, input_shape=(67, 67, 3), width=1 / 8, init="xavier")


# ------------------------------------------------------------------------------------ LRN


def lrn_numpy(a: np.ndarray, r: int, k: float, alpha: float, beta: float) -> np.ndarray:
    """b_i = a_i / (k + alpha * sum_{j=i-r}^{i+r} a_j^2)^beta, window clipped at the edges."""
    out = np.empty_like(a)
    channels = a.shape[-1]
    for i in range(channels):
        lo, hi = max(0, i - r), min(channels, i + r + 1)
        out[..., i] = a[..., i] / (k + alpha * (a[..., lo:hi] ** 2).sum(axis=-1)) ** beta
    return out


@pytest.mark.parametrize(
    "radius, k, alpha, beta", [(2, 2.0, 1e-4, 0.75), (0, 1.0, 0.5, 0.5), (1, 1.0, 1e-2, 0.75), (3, 2.0, 1e-3, 1.0)]
)
def test_lrn_against_numpy(radius, k, alpha, beta):
    rng = np.random.default_rng(radius)
    a = rng.normal(scale=20.0, size=(2, 5, 4, 9)).astype("float32")
    layer = LocalResponseNormalization(radius, k, alpha, beta)
    np.testing.assert_allclose(np.asarray(layer(a)), lrn_numpy(a, radius, k, alpha, beta), rtol=1e-5, atol=1e-6)
    assert LocalResponseNormalization.from_config(layer.get_config()).get_config() == layer.get_config()


def test_lrn_uses_tensorflows_per_element_alpha():
    import tensorflow as tf

    a = np.random.default_rng(3).normal(scale=30.0, size=(1, 3, 3, 12)).astype("float32")
    ours = LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)(a)
    theirs = tf.nn.local_response_normalization(a, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5)


# ------------------------------------------------------------------------- Inception module


def test_inception_module_shape_params_and_config():
    module = InceptionModule(64, 96, 128, 16, 32, 32, name="inception_3a")
    out = module(np.zeros((1, 28, 28, 192), "float32"))
    assert tuple(out.shape) == (1, 28, 28, 256)
    expected = (conv_params(1, 192, 64) + conv_params(1, 192, 96) + conv_params(3, 96, 128)
                + conv_params(1, 192, 16) + conv_params(5, 16, 32) + conv_params(1, 192, 32))
    assert module.count_params() == expected == 163_696
    clone = InceptionModule.from_config(module.get_config())
    assert clone.get_config() == module.get_config()


def test_inception_module_regularizer_reaches_every_branch():
    module = InceptionModule(4, 3, 5, 2, 3, 2)
    module(np.zeros((1, 8, 8, 6), "float32"))
    assert len(module.losses) == 0
    module.kernel_regularizer = keras.regularizers.L2(0.01)
    assert len(module.losses) == 6
    assert module.get_config()["kernel_regularizer"] is not None


# ---------------------------------------------------- small variants: train, save, load

SMALL = [
    ("lenet5_classic", (32, 32, 1), {}),
    ("alexnet", (67, 67, 3), {"width": 1 / 16}),
    ("vgg11", (32, 32, 3), {"width": 1 / 16}),
    ("vgg13", (32, 32, 3), {"width": 1 / 16}),
    ("vgg16", (32, 32, 3), {"width": 1 / 16}),
    ("vgg19", (32, 32, 3), {"width": 1 / 16}),
    ("googlenet", (96, 96, 3), {"width": 1 / 16}),
    ("googlenet", (64, 64, 3), {"width": 1 / 16, "aux_classifiers": False}),
]
# Every architecture's headless build, round trip and training step run in the default tier
# (test_every_architecture.py); these whole classifiers, with their heads, in the slow tier.
SMALL = [pytest.param(*case, marks=pytest.mark.slow) if case[0] in ("alexnet", "googlenet", "vgg11", "vgg13", "vgg16", "vgg19") else case for case in SMALL]
# Every variant here takes its traced (graph-mode) step: GoogLeNet's (the traced
# AuxiliaryClassifierModel step, seconds to trace) runs only here, in the slow tier; the
# default-tier GoogLeNet tests take their steps eagerly.
EAGER: set[str] = set()


@pytest.mark.parametrize("name, shape, options", SMALL)
def test_small_variant_trains_and_round_trips(tmp_path, name, shape, options):
    model = build_model(name, num_classes=3, input_shape=shape, **options)
    model.compile("adam", keras.losses.CategoricalCrossentropy(), metrics=["accuracy"], run_eagerly=name in EAGER)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, *shape)).astype("float32")
    y = np.eye(3)[[0, 1, 2, 0]].astype("float32")
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.output_shape == (None, 3) and model.predict_on_batch(x).shape == (4, 3)

    card = ModelCard(architecture=name, class_names=["a", "b", "c"], input_shape=shape)
    loaded, _ = load_model(save_model(model, tmp_path / "m.keras", card))
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------- GoogLeNet auxiliary classifiers


def _tiny_googlenet(**options):
    return build_model("googlenet", num_classes=3, input_shape=(96, 96, 3), width=1 / 16,
                       dropout=0.0, aux_dropout=0.0, **options)


def _cross_entropy(y, logits) -> float:
    """Mean categorical cross-entropy from logits (as Keras computes it after a softmax)."""
    logits = np.asarray(logits, dtype="float64")
    top = logits.max(axis=-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    return float(np.mean(-np.sum(y * log_probs, axis=-1)))


def _logits(model, x):
    """Logits of the main and auxiliary classifiers of a GoogLeNet."""
    graph = model.training_model
    names = ["logits", "aux1_logits", "aux2_logits"]
    probe = keras.Model(graph.input, [graph.get_layer(name).output for name in names])
    return [np.asarray(z) for z in probe(x, training=False)]


def test_googlenet_exposes_only_the_main_output():
    model = _tiny_googlenet()
    assert isinstance(model, AuxiliaryClassifierModel)
    assert model.output_shape == (None, 3)
    assert [tuple(s) for s in model.training_model.output_shape] == [(None, 3)] * 3
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    assert model(x, training=False).shape == (2, 3)
    assert model(x, training=True).shape == (2, 3)
    assert model.predict(x, verbose=0).shape == (2, 3)
    assert {layer.name for layer in model.aux_layers} >= {"aux1_fc", "aux2_fc", "aux1_probabilities"}
    assert not any(layer.name.startswith("aux") for layer in model.layers)
    plain = _tiny_googlenet(aux_classifiers=False)
    assert not isinstance(plain, AuxiliaryClassifierModel)
    assert model.count_params() > plain.count_params()


def test_googlenet_training_loss_adds_the_weighted_aux_losses(tmp_path):
    model = _tiny_googlenet()
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (6, 96, 96, 3)).astype("float32")
    y = np.eye(3)[[0, 1, 2, 0, 1, 2]].astype("float32")
    # Without dropout (and without batch norm) the forward pass is the same in training.
    main, aux1, aux2 = _logits(model, x)
    expected = _cross_entropy(y, main) + 0.3 * (_cross_entropy(y, aux1) + _cross_entropy(y, aux2))
    # Eager steps (tracing this train step was most of the test's cost); the traced step runs in
    # test_small_variant_trains_and_round_trips[googlenet] (slow tier).
    model.compile(keras.optimizers.SGD(0.0), keras.losses.CategoricalCrossentropy(), metrics=["accuracy"],
                  run_eagerly=True)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] > _cross_entropy(y, main) + 1e-3
    # Evaluation (and validation during fit) reports the main loss only.
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(_cross_entropy(y, main), rel=1e-4)
    # A string loss works too, and the gradient reaches the auxiliary heads.
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", run_eagerly=True)
    aux_before = [np.asarray(w).copy() for layer in model.aux_layers for w in layer.weights]
    model.train_on_batch(x, y)
    aux_after = [np.asarray(w) for layer in model.aux_layers for w in layer.weights]
    assert any(not np.array_equal(a, b) for a, b in zip(aux_before, aux_after))
    # The loaded model keeps its side heads, their weights and its aux weight.
    card = ModelCard(architecture="googlenet", class_names=["a", "b", "c"], input_shape=(96, 96, 3))
    loaded, _ = load_model(save_model(model, tmp_path / "g.keras", card))
    assert isinstance(loaded, AuxiliaryClassifierModel) and loaded.aux_weight == 0.3
    for a, b in zip(model.training_model(x, training=False), loaded.training_model(x, training=False)):
        np.testing.assert_array_equal(a, b)


def test_googlenet_aux_weight_option_and_fit():
    model = _tiny_googlenet(aux_weight=1.0)
    assert model.aux_weight == 1.0
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (4, 96, 96, 3)).astype("float32")
    y = np.eye(3)[[0, 1, 2, 0]].astype("float32")
    main, aux1, aux2 = _logits(model, x)
    model.compile(keras.optimizers.SGD(0.0), keras.losses.CategoricalCrossentropy(), run_eagerly=True)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x, y))
    expected = _cross_entropy(y, main) + _cross_entropy(y, aux1) + _cross_entropy(y, aux2)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)
    assert history.history["val_loss"][0] == pytest.approx(_cross_entropy(y, main), rel=1e-4)


def test_googlenet_weight_penalty_reaches_modules_and_aux_heads(tmp_path):
    model = _tiny_googlenet(l2=1e-3)
    # 3 stem convolutions + 9 modules x 6 + the classifier + 2 side heads x (conv, fc, logits)
    assert len(model.losses) == 3 + 9 * 6 + 1 + 2 * 3
    card = ModelCard(architecture="googlenet", class_names=["a", "b", "c"], input_shape=(96, 96, 3))
    loaded, _ = load_model(save_model(model, tmp_path / "g.keras", card))
    assert len(loaded.losses) == len(model.losses)


def test_googlenet_too_small_input_is_a_clear_error():
    with pytest.raises(ModelError, match="cannot build"):
        build_model("googlenet", num_classes=3, input_shape=(48, 48, 3), width=1 / 16)


# --------------------------------------------------------------- VGG, fully convolutional


def test_dense_vgg_converts_to_a_fully_convolutional_model():
    dense = build_model("vgg11", num_classes=5, width=1 / 16)
    fcn = dense_to_convolutional(dense)
    assert fcn.count_params() == dense.count_params()
    assert fcn.input_shape == (None, None, None, 3) and fcn.output_shape == (None, None, None, 5)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(fcn.predict_on_batch(x)[:, 0, 0, :], dense.predict_on_batch(x), rtol=1e-4, atol=1e-6)
    # Two more 32-pixel cells down and one more across give a 3x2 map of class probabilities.
    larger = rng.uniform(0, 255, (1, 224 + 64, 224 + 32, 3)).astype("float32")
    class_map = fcn.predict_on_batch(larger)
    assert class_map.shape == (1, 3, 2, 5)
    np.testing.assert_allclose(class_map.sum(axis=-1), 1.0, rtol=1e-5)


def test_fully_convolutional_option_takes_the_dense_weights_reshaped():
    dense = build_model("vgg13", num_classes=4, width=1 / 16)
    fcn = build_model("vgg13", num_classes=4, width=1 / 16, fully_convolutional=True)
    def weighted(model):
        return [layer.name for layer in model.layers if layer.weights]

    assert weighted(fcn) == weighted(dense)
    assert fcn.count_params() == dense.count_params()
    fcn.set_weights([w.reshape(v.shape) for w, v in zip(dense.get_weights(), fcn.weights)])
    x = np.random.default_rng(5).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(fcn.predict_on_batch(x)[:, 0, 0, :], dense.predict_on_batch(x), rtol=1e-4, atol=1e-6)


def test_fully_convolutional_builder_accepts_any_input_size(tmp_path):
    fcn = build_model("vgg11", num_classes=4, width=1 / 16, fully_convolutional=True, input_shape=(None, None, 3))
    assert fcn.output_shape == (None, None, None, 4)
    x = np.random.default_rng(6).uniform(0, 255, (1, 256, 320, 3)).astype("float32")
    assert fcn.predict_on_batch(x).shape == (1, 2, 4, 4)
    card = ModelCard(architecture="vgg11", class_names=list("abcd"), input_shape=(224, 224, 3))
    loaded, _ = load_model(save_model(fcn, tmp_path / "fcn.keras", card))
    np.testing.assert_array_equal(loaded.predict_on_batch(x), fcn.predict_on_batch(x))


@pytest.mark.parametrize("name, shape, options", [("alexnet", (227, 227, 3), {"width": 1 / 16}),
                                                  ("lenet5_classic", (32, 32, 1), {})])
def test_dense_to_convolutional_works_for_other_chain_models(name, shape, options):
    dense = build_model(name, num_classes=4, input_shape=shape, **options)
    fcn = dense_to_convolutional(dense)
    x = np.random.default_rng(7).uniform(0, 255, (2, *shape)).astype("float32")
    np.testing.assert_allclose(fcn.predict_on_batch(x)[:, 0, 0, :], dense.predict_on_batch(x), rtol=1e-4, atol=1e-6)


def test_dense_to_convolutional_refuses_models_without_dense_head():
    headless = build_model("vgg11", num_classes=4, width=1 / 16, include_top=False)
    with pytest.raises(ModelError, match="no Flatten"):
        dense_to_convolutional(headless)
