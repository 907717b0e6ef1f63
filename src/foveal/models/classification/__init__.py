"""Classification architectures; importing this package registers them."""

from foveal.models.classification import geron_cnn, lenet, resnet

__all__ = ["geron_cnn", "lenet", "resnet"]
