"""Feature pyramids measured on the graph: the cut-tensor rule, the two-size stride, and the
levels the zoo networks get (every architecture: test_every_architecture.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from foveal.errors import ModelError
from foveal.models import build_model
from foveal.models.pyramid import feature_pyramid, level_stride, pyramid_levels


def _names(model, **kwargs) -> dict[str, str]:
    return {level.name: level.layer for level in pyramid_levels(model, **kwargs)}


def test_residual_branches_are_never_levels_and_padding_is_skipped():
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.Conv2D(4, 3, strides=2, name="down")(x)  # stride 2, 16x16
    branch = layers.Conv2D(4, 3, padding="same", name="branch_conv")(x)
    x = layers.Add(name="unit_out")([x, branch])
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="down2")(x)
    inner = layers.Conv2D(4, 1, name="inner")(x)  # stride 4 but bypassed by the shortcut
    x = layers.Add(name="out")([x, inner])
    model = keras.Model(inputs, x)
    assert _names(model) == {"P0": "stem", "P1": "unit_out", "P2": "out"}
    assert _names(model, position="first") == {"P0": "stem", "P1": "down", "P2": "down2"}
    assert list(feature_pyramid(model)) == ["P2"]  # P2 and above by default
    assert feature_pyramid(model, min_level=0, max_level=1)["P1"] is model.get_layer("unit_out").output


def test_unpadded_layers_are_measured_by_difference_not_ratio():
    # LeNet-5: 32 -> 28 -> 14 -> 10 -> 5; 32 / 5 would say stride 6.4, two sizes say 4
    model = build_model("lenet5", input_shape=(32, 32, 1), include_top=False)
    levels = pyramid_levels(model)
    assert [(lv.name, lv.stride, lv.layer, lv.tensor.shape[1]) for lv in levels[1:]] == [
        ("P1", 2, "c3", 10), ("P2", 4, "s4", 5)]


def test_strides_that_are_not_powers_of_two_and_pooled_maps_are_no_levels():
    inputs = keras.Input((None, None, 1))
    x = layers.Conv2D(2, 3, strides=3, padding="same", name="by3")(inputs)
    x = layers.Conv2D(2, 3, strides=2, padding="same", name="by6")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    assert pyramid_levels(keras.Model(inputs, x)) == []


def test_dynamic_inputs_are_measured_at_the_given_size_and_bad_models_refused():
    model = build_model("resnet18", input_shape=(None, None, 3), include_top=False, width=16)
    pyramid = feature_pyramid(model, input_size=(64, 96))
    assert list(pyramid) == ["P2", "P3", "P4", "P5"]
    assert [level_stride(name) for name in pyramid] == [4, 8, 16, 32]
    with pytest.raises(ModelError, match="cannot measure.*2x2"):
        feature_pyramid(build_model("xception", input_shape=(None, None, 3), include_top=False, alpha=0.0625),
                        input_size=(2, 2))
    a, b = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    with pytest.raises(ModelError, match="one-image-input"):
        feature_pyramid(keras.Model([a, b], layers.Add()([a, b])))
    with pytest.raises(ValueError, match="position"):
        pyramid_levels(keras.Model(a, a), position="middle")
    with pytest.raises(ValueError, match="pyramid level"):
        level_stride("C3")


def test_cifar_stem_levels_follow_the_spatial_sizes():
    # bug row of issue 13: the stem changes the strides, so levels cannot be fixed names
    model = build_model("resnet18", input_shape=(64, 64, 3), include_top=False, stem="cifar", width=16)
    levels = pyramid_levels(model)
    assert [(lv.name, lv.layer) for lv in levels] == [
        ("P0", "stage1_unit2_out"), ("P1", "stage2_unit2_out"), ("P2", "stage3_unit2_out"), ("P3", "stage4_unit2_out")]
    for level in levels:
        assert level.tensor.shape[1:3] == (64 // level.stride, 64 // level.stride)
    imagenet = build_model("resnet18", input_shape=(64, 64, 3), include_top=False, width=16)
    assert {name: t.shape[1] for name, t in feature_pyramid(imagenet).items()} == {"P2": 16, "P3": 8, "P4": 4, "P5": 2}


@pytest.mark.parametrize("name, options, expected", [
    # the layers the zoo used to name by hand, found by the rule (checked at full size before)
    ("resnet50v2", {"width": 16}, {"P2": "stage1_unit2_out", "P3": "stage2_unit3_out", "P4": "stage3_unit5_out",
                                   "P5": "post_relu"}),
    ("vgg16", {"width": 1 / 16}, {"P2": "block3_conv3", "P3": "block4_conv3", "P4": "block5_conv3",
                                  "P5": "block5_pool"}),
    ("googlenet", {"width": 1 / 16}, {"P2": "norm2", "P3": "inception_3b", "P4": "inception_4e",
                                      "P5": "inception_5b"}),
    # xception follows middle_blocks: P4 is the last middle block, whatever their number
    ("xception", {"alpha": 1 / 16}, {"P2": "block2_add", "P3": "block3_add", "P4": "block12_add",
                                     "P5": "block14_sepconv2_act"}),
    ("xception", {"alpha": 1 / 16, "middle_blocks": 2}, {"P2": "block2_add", "P3": "block3_add",
                                                         "P4": "block6_add", "P5": "block8_sepconv2_act"}),
    # MobileNetV2: the expansion entering each downsampling unit (where SSDLite attaches)
    ("mobilenetv2", {"alpha": 0.35}, {"P2": "block3_expand_relu", "P3": "block6_expand_relu",
                                      "P4": "block13_expand_relu", "P5": "head_relu"}),
])
def test_zoo_levels(name, options, expected):
    model = build_model(name, input_shape=(64, 64, 3), include_top=False, **options)
    assert {level: t._keras_history.operation.name for level, t in feature_pyramid(model).items()} == expected


def test_fcn_position_first_gives_the_vgg_pools():
    model = build_model("vgg11", input_shape=(64, 64, 3), include_top=False, width=1 / 16)
    first = {name: t._keras_history.operation.name for name, t in feature_pyramid(model, position="first").items()}
    assert first == {"P2": "block2_pool", "P3": "block3_pool", "P4": "block4_pool", "P5": "block5_pool"}


def test_level_tensors_share_the_backbone_weights():
    model = build_model("resnet18", input_shape=(64, 64, 3), include_top=False, width=16)
    head = keras.Model(model.input, feature_pyramid(model)["P5"])
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(head(x)), np.asarray(model(x)))
