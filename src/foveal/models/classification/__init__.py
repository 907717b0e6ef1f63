"""Classification architectures; importing this package registers them."""

from foveal.models.classification import geron_cnn, lenet, resnet  # noqa: I001  resnet before senet
from foveal.models.classification import mobilenet, senet, xception

__all__ = ["geron_cnn", "lenet", "mobilenet", "resnet", "senet", "xception"]
