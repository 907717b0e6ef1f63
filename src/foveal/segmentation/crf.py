"""Optional dense-CRF refinement of per-pixel probabilities.

A fully connected CRF (Krähenbühl, Koltun, "Efficient Inference in Fully Connected CRFs with
Gaussian Edge Potentials", NeurIPS 2011; after DeepLab, Chen et al., ICLR 2015): the unary term
is the network's ``-log p``, a smoothness and an appearance (bilateral) Gaussian kernel favour
equal labels for close, similar pixels. It needs the optional ``pydensecrf2`` package
(``pip install 'foveal[crf]'``); without it ``--crf`` says what to install.

Example:
    >>> probs = crf_refine(image, probs, iterations=5)   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from foveal.errors import FovealError


def require_crf() -> None:
    """Raise a :class:`FovealError` naming the package to install when the CRF is missing."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        raise FovealError("dense-CRF refinement (--crf) needs the optional package pydensecrf2, which is not "
                          "installed", hint="pip install 'foveal[crf]' (or pip install pydensecrf2; it compiles "
                          "C++ code, so a compiler such as g++ must be installed)") from None


def crf_refine(
    image: np.ndarray,
    probs: np.ndarray,
    *,
    iterations: int = 5,
    smooth_sxy: float = 3.0,
    smooth_compat: float = 3.0,
    appearance_sxy: float = 50.0,
    appearance_srgb: float = 13.0,
    appearance_compat: float = 5.0,
) -> np.ndarray:
    """Refined HxWxK probabilities from an HxW[xC] uint8 ``image`` and HxWxK ``probs``.

    ``smooth_*``: spatial std (pixels) and weight of the smoothness kernel; ``appearance_*``:
    spatial std, colour std and weight of the appearance kernel.
    """
    require_crf()
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    height, width, k = probs.shape
    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    rgb = np.ascontiguousarray(np.repeat(rgb, 3, -1) if rgb.shape[-1] == 1 else rgb[..., :3], dtype=np.uint8)
    field = dcrf.DenseCRF2D(width, height, k)
    soft = np.clip(np.moveaxis(probs, -1, 0).astype(np.float32), 1e-8, 1.0)
    field.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(soft)))
    field.addPairwiseGaussian(sxy=smooth_sxy, compat=smooth_compat)
    field.addPairwiseBilateral(sxy=appearance_sxy, srgb=appearance_srgb, rgbim=rgb, compat=appearance_compat)
    refined = np.asarray(field.inference(int(iterations)), dtype=np.float32).reshape(k, height, width)
    return np.moveaxis(refined, 0, -1)
