"""ResNet 50-152 (v1, v2), SE-ResNet, Xception, MobileNet v1/v2: parameter counts at the reference
size, a training step and a save/load round trip on tiny variants (feature pyramids: every
architecture in test_every_architecture.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from foveal.errors import ConfigError
from foveal.layers import SqueezeExcite
from foveal.models import MODELS, ModelCard, build_model, load_model, save_model

# Registers the new architectures until foveal.models.classification imports these modules.
from foveal.models.classification import mobilenet, senet, xception  # noqa: F401

slow = pytest.mark.slow

# Total count_params() (batch-norm moving statistics included) of keras.applications.X(weights=None),
# 1000 classes at the default size: the figures keras documents, re-measured with Keras 3.15.
KERAS_APPLICATIONS = [
    ("resnet50", (224, 224, 3), {}, 25_636_712),                         # ResNet50
    pytest.param("resnet101", (224, 224, 3), {}, 44_707_176, marks=slow),  # ResNet101
    pytest.param("resnet152", (224, 224, 3), {}, 60_419_944, marks=slow),  # ResNet152
    ("resnet50v2", (224, 224, 3), {}, 25_613_800),                       # ResNet50V2
    pytest.param("resnet101v2", (224, 224, 3), {}, 44_675_560, marks=slow),  # ResNet101V2
    pytest.param("resnet152v2", (224, 224, 3), {}, 60_380_648, marks=slow),  # ResNet152V2
    ("xception", (299, 299, 3), {}, 22_910_480),                         # Xception
    ("mobilenet", (224, 224, 3), {}, 4_253_864),                         # MobileNet
    ("mobilenet", (224, 224, 3), {"alpha": 0.75}, 2_601_976),            # MobileNet(alpha=0.75)
    ("mobilenet", (224, 224, 3), {"alpha": 0.5}, 1_342_536),             # MobileNet(alpha=0.5)
    ("mobilenetv2", (224, 224, 3), {}, 3_538_984),                       # MobileNetV2
    ("mobilenetv2", (224, 224, 3), {"alpha": 0.5}, 1_987_224),           # MobileNetV2(alpha=0.5)
]


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name, shape, options, expected", KERAS_APPLICATIONS)
def test_count_matches_keras_applications(name, shape, options, expected):
    model = build_model(name, num_classes=1000, input_shape=shape, **options)
    assert model.count_params() == expected
    assert model.output_shape == (None, 1000)


@pytest.mark.parametrize("alpha", [0.5, 0.75])
def test_mobilenet_width_multiplier_against_keras_applications(alpha):
    ours = build_model("mobilenet", num_classes=1000, alpha=alpha).count_params()
    keras.backend.clear_session()
    reference = keras.applications.MobileNet(weights=None, alpha=alpha).count_params()  # builds offline, < 1 s
    assert ours == reference


def _se_parameters(stages, width=64, expansion=4, ratio=16) -> int:
    """Parameters of the SE blocks of a ResNet: 2*C*(C//r) + C//r + C per unit."""
    total = 0
    for stage, units in enumerate(stages):
        c = width * 2**stage * expansion
        total += units * (2 * c * (c // ratio) + c // ratio + c)
    return total


def test_torchvision_style_and_se_resnet50_counts():
    # torchvision resnet50: 25,557,032 trainable parameters.
    assert trainable(build_model("resnet50", num_classes=1000, style="torchvision")) == 25_557_032
    keras.backend.clear_session()
    # SE-ResNet-50: Hu et al. report 28.09M; 28,088,024 is the count of the SENet authors' model
    # (e.g. pretrainedmodels' se_resnet50), = ResNet-50 + SE blocks with biases.
    model = build_model("se_resnet50", num_classes=1000)
    assert trainable(model) == 28_088_024 == 25_557_032 + _se_parameters((3, 4, 6, 3))
    assert model.count_params() == 28_141_144  # + batch-norm moving statistics
    assert sum(isinstance(layer, SqueezeExcite) for layer in model.layers) == 16


def test_se_ratio_option_on_a_basic_resnet():
    model = build_model("resnet34", num_classes=1000, se_ratio=16)
    assert trainable(model) == 21_797_672 + _se_parameters((3, 4, 6, 3), expansion=1) == 21_958_868


def _basic_resnet_trainable(stages, preact: bool, bias: bool, width=64, classes=1000) -> int:
    """Trainable parameters of a basic-unit ResNet, counted from its definition."""
    total = 49 * 3 * width + (width if bias else 0) + (0 if preact else 2 * width)  # 7x7 stem (+BN in v1)
    cin = width
    for stage, units in enumerate(stages):
        c = width * 2**stage
        for _ in range(units):
            proj = cin != c
            if preact:  # BN(cin), 3x3 conv, BN, 3x3 conv (+bias), projection on the pre-activation
                total += 2 * cin + 9 * cin * c + 2 * c + 9 * c * c + (c if bias else 0)
                total += (cin * c + (c if bias else 0)) if proj else 0
            else:  # 3x3 conv + BN, 3x3 conv + BN, projection + BN
                total += 9 * cin * c + 2 * c + 9 * c * c + 2 * c + (cin * c + 2 * c if proj else 0)
            cin = c
    total += 2 * cin if preact else 0  # final BN
    return total + cin * classes + classes


@pytest.mark.parametrize("name, stages, preact, expected", [
    ("resnet18", (2, 2, 2, 2), False, 11_689_512),  # torchvision's figure: checks the counter itself
    ("resnet18v2", (2, 2, 2, 2), True, 11_690_600),
    ("resnet34v2", (3, 4, 6, 3), True, 21_800_616),
])
def test_basic_resnet_counts_from_their_definition(name, stages, preact, expected):
    assert _basic_resnet_trainable(stages, preact=preact, bias=preact) == expected
    assert trainable(build_model(name, num_classes=1000)) == expected


def test_headless_shapes_at_reference_size():
    model = build_model("mobilenetv2", num_classes=10, include_top=False)
    assert model.output_shape == (None, 7, 7, 1280)
    keras.backend.clear_session()
    model = build_model("resnet50v2", num_classes=10, include_top=False, width=8)
    assert model.output_shape == (None, 7, 7, 256)


def test_v2_downsamples_in_the_last_unit_of_a_stage():
    model = build_model("resnet50v2", input_shape=(64, 64, 3), include_top=False, width=4)
    assert model.get_layer("stage1_unit2_out").output.shape[1:3] == (16, 16)
    assert model.get_layer("stage1_unit3_out").output.shape[1:3] == (8, 8)
    assert model.get_layer("stage1_unit3_skip_pool") is not None  # identity shortcut, subsampled
    assert model.get_layer("stage4_unit3_out").output.shape[1:3] == (2, 2)


def test_keras_style_v1_strides_the_first_convolution():
    model = build_model("resnet50", input_shape=(64, 64, 3), include_top=False, width=4)
    assert model.get_layer("stage2_unit1_a_conv").strides == (2, 2)
    assert model.get_layer("stage2_unit1_b_conv").strides == (1, 1)
    assert model.get_layer("stage2_unit1_a_conv").use_bias
    keras.backend.clear_session()
    model = build_model("resnet50", input_shape=(64, 64, 3), include_top=False, width=4, style="torchvision")
    assert model.get_layer("stage2_unit1_b_conv").strides == (2, 2)
    assert not model.get_layer("stage2_unit1_a_conv").use_bias


SMALL = [
    ("resnet50", (64, 64, 3), {"width": 4}),
    ("resnet50v2", (32, 32, 3), {"width": 4, "stem": "cifar"}),
    ("resnet18v2", (32, 32, 3), {"width": 8, "stem": "cifar"}),
    ("se_resnet50", (64, 64, 3), {"width": 4}),
    ("resnet18", (32, 32, 3), {"width": 8, "stem": "cifar", "se_ratio": 4}),
    ("xception", (64, 64, 3), {"alpha": 0.0625, "middle_blocks": 1}),
    ("mobilenet", (32, 32, 3), {"alpha": 0.25}),
    ("mobilenetv2", (32, 32, 3), {"alpha": 0.35}),
]
# Every architecture's headless build, round trip and training step run in the default tier
# (test_every_architecture.py: test_save_and_load_round_trip and test_one_training_step, one per
# architecture); these whole classifiers, with their heads, in the slow tier. A classifier's head,
# step and save_model/load_model round trip with its card stay in the default tier through
# test_zoo_classic.py::test_small_variant_trains_and_round_trips.
SMALL = [pytest.param(*case, marks=pytest.mark.slow) for case in SMALL]


@pytest.mark.parametrize("name, shape, options", SMALL)
def test_train_step_and_round_trip(tmp_path, name, shape, options):
    model = build_model(name, num_classes=3, input_shape=shape, **options)
    # Eager: tracing (and XLA-compiling) the training graph of a 50-layer model costs ~100x more
    # CPU time than the step itself.
    model.compile("adam", "categorical_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, *shape)).astype("float32")
    y = np.eye(3)[[0, 1, 2, 0]].astype("float32")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    card = ModelCard(architecture=name, class_names=["a", "b", "c"], input_shape=shape)
    loaded, _ = load_model(save_model(model, tmp_path / "m.keras", card))
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(loaded(x, training=False)))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="style"):
        build_model("resnet50", input_shape=(32, 32, 3), style="caffe")
    with pytest.raises(ConfigError, match="se_ratio"):
        build_model("resnet18", input_shape=(32, 32, 3), se_ratio=-1)
    with pytest.raises(ConfigError, match="alpha"):
        build_model("mobilenetv2", input_shape=(32, 32, 3), alpha=0)
    with pytest.raises(ConfigError, match="middle_blocks"):
        build_model("xception", input_shape=(71, 71, 3), middle_blocks=-1)
    with pytest.raises(ConfigError, match="has no option"):
        build_model("xception", width=8)


def test_registered_metadata():
    for name in ("resnet50", "resnet101", "resnet152", "resnet18v2", "resnet34v2", "resnet50v2", "resnet101v2",
                 "resnet152v2", "se_resnet50", "xception", "mobilenet", "mobilenetv2"):
        meta = MODELS.get(name).meta
        assert meta["paper"] and meta["description"] and meta["preprocessing"]
    assert MODELS.get("resnet152").meta["description"] == "ResNet-152 v1, bottleneck units [3, 8, 36, 3], keras style"
    assert MODELS.get("resnet18").meta["description"] == "ResNet-18 v1, basic units [2, 2, 2, 2]"
    assert MODELS.get("xception").meta["input_shape"] == (299, 299, 3)
