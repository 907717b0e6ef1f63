"""Classification architectures; importing this package registers them."""

from foveal.models.classification import geron_cnn, lenet, resnet  # noqa: I001  resnet before senet
from foveal.models.classification import airbench, airbench28, alexnet, dann_mnist, googlenet, lenet_classic, mobilenet, senet, vgg, xception

__all__ = ["airbench", "airbench28", "alexnet", "dann_mnist", "geron_cnn", "googlenet", "lenet", "lenet_classic", "mobilenet", "resnet", "senet",
           "vgg", "xception"]
