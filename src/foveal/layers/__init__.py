"""Reusable Keras layers, registered as serializable so ``.keras`` files load in safe mode."""

from foveal.layers.decoder import BilinearKernel, DilatedConvBlock, MaxPoolingWithArgmax, MaxUnpooling, upsample
from foveal.layers.depthwise_pool import DepthwiseMaxPool
from foveal.layers.fused_norm import FusedBatchNormalization
from foveal.layers.inception import InceptionModule
from foveal.layers.lrn import LocalResponseNormalization
from foveal.layers.preprocess import PREPROCESSING_MODES, Preprocess
from foveal.layers.reversal import GradientReversal, domain_classifier
from foveal.layers.squeeze_excite import SqueezeExcite, with_se

__all__ = [
    "PREPROCESSING_MODES", "BilinearKernel", "DepthwiseMaxPool", "DilatedConvBlock", "FusedBatchNormalization",
    "GradientReversal",
    "InceptionModule",
    "LocalResponseNormalization", "MaxPoolingWithArgmax", "MaxUnpooling", "Preprocess", "SqueezeExcite",
    "domain_classifier", "upsample", "with_se",
]
