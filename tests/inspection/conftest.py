"""Models shared by several inspection tests (built once: ResNet-18 at 224x224 takes a second)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def resnet18_imagenet():
    from foveal.models import build_model

    return build_model("resnet18", num_classes=1000)
