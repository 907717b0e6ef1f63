"""Enhancement architectures: shapes, published parameter counts, scales, options, tiling."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.enhancement.models import build_enhancer
from foveal.enhancement.predict import enhance_array
from foveal.errors import ConfigError


def test_edsr_baseline_has_the_published_parameter_count():
    # Lim et al. 2017, EDSR-baseline (16 blocks, 64 filters, RGB): 1.37M parameters at x2
    assert build_enhancer("edsr", channels=3, scale=2).count_params() == 1_369_859


@pytest.mark.slow
def test_edsr_baseline_x3_x4_parameter_counts():
    # the x3/x4 counts follow from its upsamplers (one x3 sub-pixel step; two x2 steps): 1.55M and 1.52M
    assert build_enhancer("edsr", channels=3, scale=3).count_params() == 1_554_499
    assert build_enhancer("edsr", channels=3, scale=4).count_params() == 1_517_571


@pytest.mark.parametrize("model,scale", [("espcn", 3), ("edsr", 4), ("sr-upscale", 2), ("denoise", 1)])
def test_outputs_are_scale_times_the_input(model, scale):
    options = {"blocks": 1, "filters": 8} if model == "edsr" else {"width": 4} if model != "espcn" else {}
    net = build_enhancer(model, channels=1, scale=scale, options=options)
    assert net(np.zeros((2, 8, 12, 1), np.float32)).shape == (2, 8 * scale, 12 * scale, 1)


def test_a_scale_the_architecture_cannot_do_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"--scale 5: edsr upscales by 2, 3, 4, 8"):
        build_enhancer("edsr", channels=3, scale=5)
    with pytest.raises(ConfigError, match=r"--scale 2: the denoise model keeps the image size"):
        build_enhancer("denoise", channels=3, scale=2)
    with pytest.raises(ConfigError, match=r"--model-options: espcn has no option 'blocks'"):
        build_enhancer("espcn", channels=3, scale=2, options={"blocks": 3})
    with pytest.raises(ConfigError, match=r"--model 'esrgan': unknown enhancement model"):
        build_enhancer("esrgan", channels=3, scale=2)


def test_unpooling_decoder_puts_values_back_where_the_maxima_were():
    net = build_enhancer("denoise", channels=1, options={"decoder": "unpool", "width": 4})
    names = [layer.__class__.__name__ for layer in net.layers]
    assert names.count("MaxPoolingWithArgmax") == 2 and names.count("MaxUnpooling") == 2
    assert net(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 28, 28, 1)
    with pytest.raises(ConfigError, match="decoder=unpool needs the default encoder"):
        build_enhancer("denoise", channels=1, options={"decoder": "unpool", "encoder": "resnet18"}, input_size=32)


@pytest.mark.slow
def test_zoo_encoder_decodes_its_feature_map_to_the_input_size():
    net = build_enhancer("denoise", channels=3, options={"encoder": "resnet18", "width": 4, "depth": 2},
                         input_size=32)
    assert net.output_shape == (None, 32, 32, 3)


@pytest.mark.parametrize("model,scale,options,multiple,tile,margin", [
    ("espcn", 2, {"width": 8}, 1, 32, 8),
    ("edsr", 3, {"blocks": 2, "filters": 8}, 1, 32, 8),
    ("denoise", 1, {"width": 4, "depth": 2}, 4, 72, 28),
])
def test_tiled_prediction_equals_one_pass(model, scale, options, multiple, tile, margin):
    net = build_enhancer(model, channels=1, scale=scale, options=options)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (70, 83, 1)).astype(np.float32)
    whole = enhance_array(net, image, scale=scale, multiple=multiple, tile=1024)
    tiled = enhance_array(net, image, scale=scale, multiple=multiple, tile=tile, margin=margin)
    assert whole.shape == tiled.shape == (70 * scale, 83 * scale, 1)
    # Fully convolutional: with a margin wider than the receptive field's reach, every pixel away from the
    # image's own border is the same; the denoiser's poolings need tiles aligned to their multiple (4).
    b = margin * scale
    assert np.abs(whole[b:-b, b:-b] - tiled[b:-b, b:-b]).max() < 1e-5
