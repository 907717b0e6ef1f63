"""scikit-learn's handwritten digits: 1,797 8x8 gray images that ship with scikit-learn.

The values 0..16 are stretched to 0..255 so the images look like any other uint8 data set.
There is no split; the caller makes one.
"""

from __future__ import annotations

import numpy as np

from foveal.data.readers import numbered_names
from foveal.data.source import LabeledImages


def load_digits_dataset() -> dict[str, LabeledImages]:
    """The digits as ``{"train": LabeledImages}`` with images (1797, 8, 8, 1) uint8.

    Example:
        >>> load_digits_dataset()["train"].class_names[:3]
        ['0', '1', '2']
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    data = LabeledImages(
        class_names=numbered_names(10),
        labels=bunch.target.astype(np.int32),
        images=images,
        origin="sklearn:digits",
        info={"format": "digits"},
    )
    return {"train": data}
