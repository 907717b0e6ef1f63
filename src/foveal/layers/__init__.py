"""Reusable Keras layers, registered as serializable so ``.keras`` files load in safe mode."""

from foveal.layers.inception import InceptionModule
from foveal.layers.lrn import LocalResponseNormalization
from foveal.layers.depthwise_pool import DepthwiseMaxPool
from foveal.layers.preprocess import PREPROCESSING_MODES, Preprocess
from foveal.layers.squeeze_excite import SqueezeExcite, with_se

__all__ = ["DepthwiseMaxPool", "SqueezeExcite", "with_se", "PREPROCESSING_MODES", "InceptionModule", "LocalResponseNormalization", "Preprocess"]
