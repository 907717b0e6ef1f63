"""SE-ResNet: ResNets with a squeeze-and-excitation block in every residual unit.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018. Each unit's residual branch is
rescaled channel by channel by a :class:`~foveal.layers.squeeze_excite.SqueezeExcite` block
(ratio 16) just before the addition. ``se_resnet50`` is a row of the ResNet table
(:data:`~foveal.models.classification.resnet.RESNETS`) with ``se_ratio=16`` and the
torchvision style (no convolution biases), as the SENet authors' model: 28,088,024 trainable
parameters at 224x224x3 with 1000 classes (25,557,032 for ResNet-50 plus 2,530,992 for the SE
blocks; the paper reports 28.09M), 28,141,144 with the batch-norm statistics.

Every ResNet accepts the same option: ``build_model("resnet34", se_ratio=16)`` is SE-ResNet-34.

Example:
    >>> from foveal.models import build_model
    >>> model = build_model("se_resnet50", num_classes=5, input_shape=(64, 64, 3), width=8)
    >>> model.get_layer("stage1_unit1_se").ratio
    16
"""

from __future__ import annotations

from dataclasses import replace

from foveal.models.classification.resnet import RESNETS, ResNetVariant, register_resnet

SE_PAPER = "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018"

SE_RESNETS: dict[str, ResNetVariant] = {
    "se_resnet50": replace(RESNETS["resnet50"], style="torchvision", se_ratio=16, preprocessing="torch",
                           paper=SE_PAPER),
}

for _name, _variant in SE_RESNETS.items():
    register_resnet(_name, _variant)

__all__ = ["SE_RESNETS"]
