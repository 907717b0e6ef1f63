"""Per-frame CNN features of clips, computed once and cached as ``.npy`` files.

The feature extractor is a convolutional network cut at its global pooling (Planche & Andres
ch. 8 use a frozen ImageNet Inception-V3 the same way). ``--backbone`` takes:

* a foveal classifier file (``.keras``), e.g. one trained on CIFAR-10 with ``foveal train``;
  it is rebuilt for the frame size (its layers are size-independent up to the global pooling)
  and its ``Preprocess`` layer comes along, so frames go in as raw 0..255 pixels;
* a foveal zoo name (``airbench``, ``resnet18``, ...): randomly initialised features, for tests
  and for fine-tuned runs;
* ``keras:NAME`` (``keras:MobileNetV2``, ...): a keras.applications network with ImageNet
  weights, downloaded by Keras (online only; offline this fails with one line saying so).

Cache layout: ``CACHE/<key>/<clip-digest>.npy`` where ``key`` names the backbone (with a digest
of its file), frame size and sampling, and the clip digest covers the clip's path, size and
modification time; a second run with the same settings reads the arrays instead of decoding.
The end-to-end models' decoded frames (uint8, sampled and resized) are cached the same way
under ``CACHE/frames-HxW-SAMPLING/`` (:func:`clip_frames`).

Example:
    >>> ex = FeatureExtractor.create("airbench", frame_size=(64, 64))  # doctest: +SKIP
    >>> feats = clip_features(ex, "clip.mp4", Sampling.parse("even:16"), cache="runs/video-features")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from foveal.errors import ConfigError, DataError, ModelError
from foveal.utils_io import atomic_path
from foveal.video.decode import iter_frames
from foveal.video.sampling import Sampling


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]


class FeatureExtractor:
    """A CNN that maps ``(N, H, W, 3)`` uint8 frames to ``(N, D)`` feature vectors."""

    def __init__(self, model: Any, spec: str, frame_size: tuple[int, int], digest: str) -> None:
        self.model, self.spec, self.frame_size, self.digest = model, spec, tuple(frame_size), digest
        self.dim = int(model.output_shape[-1])

    @classmethod
    def create(cls, spec: str, frame_size: tuple[int, int] = (64, 64), *, options: dict[str, Any] | None = None,
               seed: int = 0) -> "FeatureExtractor":
        """Build the extractor of ``spec`` (see the module docstring) for frames of ``frame_size``."""
        import keras

        h, w = (int(v) for v in frame_size)
        if spec.startswith("keras:"):
            return cls(_keras_application(spec[6:], (h, w)), spec, (h, w), "imagenet")
        if spec.endswith(".keras"):
            path = Path(spec)
            if not path.is_file():
                raise ModelError(f"--backbone {spec}: file not found",
                                 hint="pass a classifier .keras file, a zoo name (foveal models) or keras:NAME")
            from foveal.models.io import load_model

            model, _ = load_model(path)
            return cls(_rebuilt_features(model, (h, w), spec), spec, (h, w), _file_digest(path))
        from foveal.models.build import build_model
        from foveal.models.registry import MODELS

        if spec not in MODELS:
            raise ConfigError(f"--backbone {spec!r} is not a zoo architecture, a .keras file or keras:NAME",
                              hint="see `foveal models`; e.g. --backbone airbench or --backbone runs/cifar/best.keras")
        keras.utils.set_random_seed(seed)
        base = build_model(spec, num_classes=10, input_shape=(h, w, 3), include_top=False, **(options or {}))
        x = keras.layers.GlobalAveragePooling2D(name="video_features")(base.output)
        model = keras.Model(base.input, x, name=f"{spec}_features")
        digest = hashlib.sha1(json.dumps([spec, options or {}, seed], sort_keys=True).encode()).hexdigest()[:12]
        return cls(model, spec, (h, w), f"random{digest}")

    def key(self, sampling: Sampling, extra: str = "") -> str:
        """The cache folder name: backbone, its digest, frame size and sampling."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.spec).stem if self.spec.endswith(".keras") else self.spec)
        h, w = self.frame_size
        return f"{name}-{self.digest}-{h}x{w}-{str(sampling).replace(':', '')}{extra}"

    def __call__(self, frames: np.ndarray, batch_size: int = 64) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float32)
        # predict_on_batch runs Keras' compiled predict step: 1.5x the frames/s of eager calls here
        out = [np.asarray(self.model.predict_on_batch(frames[i:i + batch_size].astype(np.float32)))
               for i in range(0, len(frames), batch_size)]
        return np.concatenate(out).astype(np.float32)


def _keras_application(name: str, size: tuple[int, int]):
    import keras

    builder = getattr(keras.applications, name, None)
    if builder is None or not callable(builder):
        raise ConfigError(f"--backbone keras:{name}: keras.applications has no such network",
                          hint="e.g. keras:MobileNetV2, keras:ResNet50, keras:InceptionV3")
    module = next((m for m in dir(keras.applications) if hasattr(getattr(keras.applications, m), name)), None)
    try:
        base = builder(include_top=False, weights="imagenet", input_shape=(*size, 3), pooling="avg")
    except Exception as exc:  # urllib's errors offline, ValueError for a too-small input
        if "URL" in str(exc) or "urlopen" in str(exc) or "resolution" in str(exc).lower() or isinstance(exc, OSError):
            raise ModelError(f"--backbone keras:{name}: the ImageNet weights cannot be downloaded (offline?)",
                             hint="use a foveal classifier file as --backbone (e.g. one trained on CIFAR-10 "
                                  "with `foveal train`)") from None
        raise ModelError(f"--backbone keras:{name}: {exc}") from None
    preprocess = getattr(getattr(keras.applications, module), "preprocess_input") if module else None
    inputs = keras.Input((*size, 3))
    x = keras.layers.Lambda(preprocess)(inputs) if preprocess else inputs
    return keras.Model(inputs, base(x), name=f"{name}_features")


def feature_layer(model: Any) -> str:
    """The name of the layer whose output are the features: the last global pooling layer,
    else the input of the last Dense layer."""
    names = [layer.name for layer in model.layers]
    pooled = [layer.name for layer in model.layers if "Global" in type(layer).__name__]
    if pooled:
        return pooled[-1]
    dense = [i for i, layer in enumerate(model.layers) if type(layer).__name__ == "Dense"]
    if dense and dense[-1] > 0:
        return names[dense[-1] - 1]
    raise ModelError(f"{model.name}: no global pooling or final Dense layer to take features from")


def _rebuilt_features(model: Any, size: tuple[int, int], source: str):
    """``model`` cut at its feature layer, on an input of ``size`` (same weights)."""
    import keras

    layer = feature_layer(model)
    cut = keras.Model(model.input, model.get_layer(layer).output)
    channels = int(model.input_shape[-1])
    if channels != 3:
        raise ModelError(f"--backbone {source}: takes {channels}-channel images; video frames are RGB",
                         hint="use a classifier trained on colour images")
    if tuple(model.input_shape[1:3]) == tuple(size):
        return cut
    try:
        clone = keras.models.clone_model(cut, input_tensors=keras.Input((*size, channels)))
        clone.set_weights(cut.get_weights())
    except Exception as exc:
        raise ModelError(f"--backbone {source}: cannot be rebuilt for {size[0]}x{size[1]} frames ({exc})",
                         hint=f"pass --frame-size {model.input_shape[1]}") from None
    return clone


def _cache_file(cache: str | os.PathLike, key: str, path: Path) -> Path:
    """``CACHE/KEY/<stem>-<digest of the clip's path, size and mtime>.npy``."""
    return Path(cache) / key / f"{path.stem[:40]}-{_file_digest(path)}.npy"


def _read_cached(target: Path | None, valid: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    if target is None or not target.is_file():
        return None
    try:
        array = np.load(target, allow_pickle=False)
    except (OSError, ValueError):
        return None  # a damaged cache entry is recomputed
    return array if valid(array) else None


def _write_cached(target: Path | None, array: np.ndarray) -> None:
    if target is not None:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)


def _scene_suffix(sampling: Sampling, scene_threshold: float) -> str:
    return "" if sampling.strategy != "scene" else f"-t{scene_threshold}"


def clip_features(extractor: FeatureExtractor, path: str | os.PathLike, sampling: Sampling, *,
                  cache: str | os.PathLike | None = None, scene_threshold: float = 0.4,
                  stats: dict[str, float] | None = None) -> np.ndarray:
    """``(T, D)`` features of the sampled frames of ``path``, read from ``cache`` when there.

    ``stats`` (optional) accumulates ``decode_s``, ``extract_s``, ``frames_decoded`` and
    ``frames_extracted``, ``cached`` (clips read from the cache).
    """
    path = Path(path)
    target = (None if cache is None else
              _cache_file(cache, extractor.key(sampling, _scene_suffix(sampling, scene_threshold)), path))
    feats = _read_cached(target, lambda a: a.ndim == 2 and a.shape[1] == extractor.dim)
    if feats is not None:
        if stats is not None:
            stats["cached"] = stats.get("cached", 0) + 1
        return feats
    started = time.perf_counter()
    frames, times = sampled_frames(path, sampling, extractor.frame_size, scene_threshold=scene_threshold,
                                   stats=stats)
    decoded = time.perf_counter()
    feats = extractor(frames)
    if stats is not None:
        stats["decode_s"] = stats.get("decode_s", 0.0) + decoded - started
        stats["extract_s"] = stats.get("extract_s", 0.0) + time.perf_counter() - decoded
        stats["frames_extracted"] = stats.get("frames_extracted", 0) + len(frames)
    _write_cached(target, feats)
    return feats


def frames_key(size: tuple[int, int], sampling: Sampling, scene_threshold: float = 0.4) -> str:
    """The cache folder name of decoded frames: ``frames-HxW-SAMPLING``."""
    return f"frames-{size[0]}x{size[1]}-{str(sampling).replace(':', '')}{_scene_suffix(sampling, scene_threshold)}"


def clip_frames(path: str | os.PathLike, sampling: Sampling, size: tuple[int, int], *,
                cache: str | os.PathLike | None = None, scene_threshold: float = 0.4,
                stats: dict[str, float] | None = None) -> np.ndarray:
    """The sampled frames of ``path`` resized to ``size``, ``(T, H, W, 3)`` uint8, read from
    ``cache`` when there (``CACHE/frames-HxW-SAMPLING/<clip>.npy``; written after decoding).

    ``stats`` accumulates ``decode_s``, ``frames_decoded`` and ``cached`` as in :func:`clip_features`.
    """
    path = Path(path)
    h, w = (int(v) for v in size)
    target = None if cache is None else _cache_file(cache, frames_key((h, w), sampling, scene_threshold), path)
    frames = _read_cached(target, lambda a: a.ndim == 4 and a.shape[1:] == (h, w, 3) and a.dtype == np.uint8)
    if frames is not None:
        if stats is not None:
            stats["cached"] = stats.get("cached", 0) + 1
        return frames
    started = time.perf_counter()
    frames, _ = sampled_frames(path, sampling, (h, w), scene_threshold=scene_threshold, stats=stats)
    if stats is not None:
        stats["decode_s"] = stats.get("decode_s", 0.0) + time.perf_counter() - started
    frames = np.ascontiguousarray(frames, np.uint8)
    _write_cached(target, frames)
    return frames


def sampled_frames(path: str | os.PathLike, sampling: Sampling, size: tuple[int, int], *,
                   scene_threshold: float = 0.4, stats: dict[str, float] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The frames ``sampling`` picks from ``path``, resized to ``size``: ``(frames, times)``."""
    if sampling.strategy == "fps":  # decided while decoding: only the picked frames are converted
        rate, state = sampling.amount, {"next": None}

        def keep(index: int, t: float) -> bool:
            if state["next"] is None:
                state["next"] = t
            if t >= state["next"] - 1e-9:
                state["next"] += 1.0 / rate
                return True
            return False

        picked = [(t, f) for _, t, f in iter_frames(path, size, keep=keep) if f is not None]
        if stats is not None:
            stats["frames_decoded"] = stats.get("frames_decoded", 0) + (state["next"] is not None)
        frames = np.stack([f for _, f in picked])
        return frames, np.array([t for t, _ in picked])
    if sampling.strategy == "even":  # trust the header's frame count if decoding confirms it
        from foveal.video.decode import probe
        from foveal.video.sampling import even_indices

        count = probe(path).frames
        wanted = set(even_indices(count, int(sampling.amount)).tolist()) if count > 0 else set()
        seen, picked = 0, []
        for index, t, f in iter_frames(path, size, keep=lambda i, _: i in wanted):
            seen += 1
            if f is not None:
                picked.append((t, f))
        if stats is not None:
            stats["frames_decoded"] = stats.get("frames_decoded", 0) + seen
        if seen == count and picked:
            return np.stack([f for _, f in picked]), np.array([t for t, _ in picked])
        # the header was wrong: decode again, converting every frame
    frames, times = [], []
    for _, t, f in iter_frames(path, size):
        frames.append(f)
        times.append(t)
    all_frames, all_times = np.stack(frames), np.asarray(times)
    if stats is not None:
        stats["frames_decoded"] = stats.get("frames_decoded", 0) + len(all_frames)
    idx = sampling.indices(all_times, all_frames, scene_threshold=scene_threshold)
    return all_frames[idx], all_times[idx]


def dataset_features(extractor: FeatureExtractor, clips: list[Any], sampling: Sampling, *,
                     cache: str | os.PathLike | None, skip_invalid: bool, scene_threshold: float = 0.4,
                     progress: Callable[[int, int], None] | None = None, stats: dict[str, float] | None = None
                     ) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Features of every clip: ``(features, kept clip indices, skipped 'file: reason' lines)``.

    Raises:
        DataError: a clip cannot be read and ``skip_invalid`` is off (the message names it).
    """
    return each_clip(lambda path: clip_features(extractor, path, sampling, cache=cache,
                                                scene_threshold=scene_threshold, stats=stats),
                     clips, skip_invalid=skip_invalid, progress=progress)


def dataset_frames(clips: list[Any], sampling: Sampling, size: tuple[int, int], *, cache: str | os.PathLike | None,
                   skip_invalid: bool, scene_threshold: float = 0.4,
                   progress: Callable[[int, int], None] | None = None, stats: dict[str, float] | None = None
                   ) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Sampled, resized frames of every clip (:func:`clip_frames`): ``(frames, kept, skipped)``."""
    return each_clip(lambda path: clip_frames(path, sampling, size, cache=cache, scene_threshold=scene_threshold,
                                              stats=stats),
                     clips, skip_invalid=skip_invalid, progress=progress)


def each_clip(compute: Callable[[Path], np.ndarray], clips: list[Any], *, skip_invalid: bool,
              progress: Callable[[int, int], None] | None = None) -> tuple[list[np.ndarray], list[int], list[str]]:
    """``compute(path)`` of every clip: ``(arrays, kept clip indices, skipped 'file: reason' lines)``;
    an unreadable clip or one with no sampled frame raises DataError naming it, or with
    ``skip_invalid`` is left out and named in ``skipped``."""
    arrays, kept, skipped = [], [], []
    for i, clip in enumerate(clips):
        try:
            a = compute(clip.path)
        except DataError as exc:
            if not skip_invalid:
                raise
            skipped.append(exc.message)
            continue
        if len(a) == 0:
            message = f"{clip.path}: no frames sampled"
            if not skip_invalid:
                raise DataError(message, hint="pass --skip-invalid to leave it out")
            skipped.append(message)
            continue
        arrays.append(a)
        kept.append(i)
        if progress is not None:
            progress(i + 1, len(clips))
    return arrays, kept, skipped


__all__ = ["FeatureExtractor", "clip_features", "clip_frames", "dataset_features", "dataset_frames", "each_clip",
           "feature_layer", "frames_key", "sampled_frames"]
