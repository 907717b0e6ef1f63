"""Image enhancement: denoising auto-encoders and super-resolution (``foveal enhance``).

* :mod:`.models` — ``denoise`` (convolutional denoising auto-encoder; transposed-convolution,
  upsampling or max-unpooling decoder; default or zoo encoder), ``sr-upscale`` (the texts'
  upscale-then-clean route), ``espcn`` (sub-pixel) and ``edsr`` (EDSR-baseline).
* :mod:`.degrade` — corruptions (Gaussian, salt-and-pepper, JPEG, blur) and bicubic
  downscaling inside ``tf.data``; :mod:`.pipeline` — random patches.
* :mod:`.metrics` — PSNR and SSIM on RGB and Y (checked against TensorFlow and scikit-image).
* :mod:`.task` — the engine plugin; :mod:`.score` — evaluation next to the baseline;
  :mod:`.predict` — whole images of any size (tiled); :mod:`.report`; :mod:`.export_check`.

Example:
    >>> from foveal.enhancement import EnhanceConfig, train_enhancer  # doctest: +SKIP
    >>> train_enhancer(EnhanceConfig(data="../shared/datasets/mnist", patch_size=28))  # doctest: +SKIP
"""

from foveal.enhancement.config import EnhanceConfig

__all__ = ["EnhanceConfig", "enhance_files", "evaluate_enhancer", "train_enhancer"]


def __getattr__(name: str):
    if name == "train_enhancer":
        from foveal.enhancement.task import train_enhancer

        return train_enhancer
    if name == "evaluate_enhancer":
        from foveal.enhancement.score import evaluate_enhancer

        return evaluate_enhancer
    if name == "enhance_files":
        from foveal.enhancement.predict import enhance_files

        return enhance_files
    raise AttributeError(name)
