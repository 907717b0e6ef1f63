"""Using a trained video classifier: evaluate on a clip folder, predict a label and a timeline.

``predict_video`` gives the clip's label (the frames sampled exactly as in training) and a
timeline of labels over sliding windows (``--window`` seconds every ``--stride`` seconds, each
window sampled with the model's own strategy), written as JSON and CSV, and an MP4 copy of the
video with the window's label drawn on every frame.

Example:
    >>> model = load_video_model("runs/fight/best.keras")  # doctest: +SKIP
    >>> row = predict_video(model, "long.mp4", output="out/")  # doctest: +SKIP
    >>> row["label"], len(row["timeline"])  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import DataError, ModelError
from foveal.utils_io import atomic_path, atomic_write_text, write_metrics
from foveal.video.decode import is_video_file, iter_frames, probe
from foveal.video.sampling import Sampling, pad_sequences


class VideoTooLong(DataError):
    """A video longer than the caller's limit (``predict_video(..., max_seconds=)``)."""


class FrameSource:
    """The "extractor" of an end-to-end model: the sampled frames themselves (resized to its size)."""

    def __init__(self, frame_size: tuple[int, int]) -> None:
        self.frame_size = tuple(int(v) for v in frame_size)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(frames, np.uint8)


@dataclass
class VideoModel:
    """A clip classifier with what it needs: sequence head (or the whole end-to-end model), card,
    and frame feature extractor (:class:`FrameSource` for an end-to-end model)."""

    head: Any
    card: Any
    extractor: Any

    @property
    def sampling(self) -> Sampling:
        return Sampling.parse(self.card.training["sampling"])

    @property
    def steps(self) -> int:
        return int(self.card.training["steps"])

    @property
    def class_names(self) -> list[str]:
        return list(self.card.class_names)

    @property
    def end_to_end(self) -> bool:
        return bool(self.card.training.get("end_to_end"))

    def classify(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, C)`` of per-frame feature sequences, or of frame sequences
        for an end-to-end model (padded or cut to the model's length)."""
        if self.end_to_end:
            from foveal.video.endtoend import pad_clips, padded_input

            frames, lengths = pad_clips(sequences, self.steps)
            return np.asarray(self.head.predict(padded_input(frames, lengths), verbose=0, batch_size=16))
        x, _ = pad_sequences(sequences, self.steps)
        return np.asarray(self.head.predict(x, verbose=0, batch_size=64))

    def classify_frames(self, clips: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, C)`` of clips given as their sampled frames ``(T_i, H, W, 3)``
        uint8 (the feature route computes each frame's features with the frozen backbone first)."""
        return self.classify([self.extractor(frames) for frames in clips])

    def count_params(self) -> int:
        """Weights of the whole classifier: the sequence head and, on the feature route, the backbone."""
        backbone = getattr(self.extractor, "model", None)
        return int(self.head.count_params()) + (0 if backbone is None else int(backbone.count_params()))


class ExportedVideoModel(VideoModel):
    """A video classifier exported by ``foveal export`` (SavedModel, TFLite, ONNX): one graph from
    ``frames`` ``(N, T, H, W, 3)`` uint8 and ``lengths`` ``(N,)`` int32 to ``probabilities``, run by
    an export runner (:func:`foveal.export.runners.open_runner`). Frames are sampled from a video
    file exactly as for the ``.keras`` model (:func:`predict_video`), so the runner needs nothing else.

    Example:
        >>> vm = load_video_model("runs/fight/best.onnx")  # doctest: +SKIP
        >>> predict_video(vm, "street.mp4")["label"]  # doctest: +SKIP
    """

    def __init__(self, runner: Any) -> None:
        card = runner.card
        size = tuple(card.training.get("frame_size") or card.input_shape[:2])
        super().__init__(runner, card, FrameSource(size))

    @property
    def end_to_end(self) -> bool:
        return True  # takes frames, whatever the Keras model took

    def classify(self, sequences: list[np.ndarray]) -> np.ndarray:
        from foveal.video.endtoend import pad_clips

        frames, lengths = pad_clips([np.asarray(s, np.uint8) for s in sequences], self.steps)
        out = []
        for start in range(0, len(frames), 16):
            raw = self.head.raw({"frames": frames[start:start + 16],
                                 "lengths": lengths[start:start + 16].astype(np.int32)})
            out.append(np.asarray(raw["probabilities"], np.float32))
        return np.concatenate(out)

    def classify_frames(self, clips: list[np.ndarray]) -> np.ndarray:
        return self.classify(clips)

    def count_params(self) -> int:
        return 0  # an export's graph does not say


def load_video_model(path: str | os.PathLike, *, trust_model: bool = False) -> VideoModel:
    """Load ``foveal video train``'s model file and the backbone saved beside it, or an export of
    it (``.onnx``, ``.tflite``, SavedModel folder: :class:`ExportedVideoModel`; its graph is checked
    against foveal's allow-list of inference ops unless ``trust_model``).

    Raises:
        ModelError: the file is not a video model, or its backbone file is missing.
    """
    import keras

    if Path(path).suffix != ".keras" and Path(path).exists():
        from foveal.export.runners import open_runner

        runner = open_runner(path, trust_model=trust_model)
        if runner.card.task != "video":
            raise ModelError(f"{path} is an export of a {runner.card.task} model, not of a video classifier",
                             hint="export a best.keras written by `foveal video train` with `foveal export`")
        return ExportedVideoModel(runner)

    import foveal.layers  # noqa: F401  the backbone's Preprocess layer
    import foveal.models.build  # noqa: F401  zoo layers and initializers
    from foveal.models.io import load_model
    from foveal.video.features import FeatureExtractor

    head, card = load_model(path)
    if card.task != "video":
        raise ModelError(f"{path} is a {card.task} model, not a video classifier",
                         hint="use a best.keras written by `foveal video train`")
    facts = card.training
    size = tuple(facts.get("frame_size") or card.input_shape[:2])
    if facts.get("end_to_end"):
        return VideoModel(head, card, FrameSource(size))
    if facts.get("backbone_file"):
        backbone = Path(path).parent / facts["backbone_file"]
        if not backbone.is_file():
            raise ModelError(f"{path}: its frame backbone {backbone} is missing",
                             hint="keep backbone.keras beside the model file (copy the run folder whole)")
        try:
            net = keras.models.load_model(backbone, compile=False, safe_mode=True)
        except Exception as exc:
            raise ModelError(f"{backbone}: cannot be loaded ({type(exc).__name__}: {str(exc)[:160]})") from None
        from foveal.video.features import _file_digest

        extractor = FeatureExtractor(net, str(facts.get("backbone")), size, _file_digest(backbone))
    else:
        extractor = FeatureExtractor.create(str(facts["backbone"]), size)
    if extractor.dim != int(facts.get("feature_dim", extractor.dim)):
        raise ModelError(f"{path}: the backbone gives {extractor.dim} features, the model takes "
                         f"{facts['feature_dim']}")
    return VideoModel(head, card, extractor)


def evaluate_video(model_path: str | os.PathLike, data: str | os.PathLike, *, output: str | os.PathLike | None = None,
                   skip_invalid: bool = False, class_map: Any = None,
                   cache: str | os.PathLike | None = None) -> dict[str, Any]:
    """Accuracy, per-class report and confusion matrix of a video model on a clip folder."""
    from foveal.evaluation.classes import match_classes, parse_class_map, relabel
    from foveal.evaluation.classification import classification_metrics
    from foveal.video.decode import scan_video_folder
    from foveal.video.features import dataset_features, dataset_frames

    vm = load_video_model(model_path)
    clips, names = scan_video_folder(data)
    mapping = match_classes(vm.class_names, names, parse_class_map(class_map), origin=str(data))
    threshold = float(vm.card.training.get("scene_threshold", 0.4))
    if vm.end_to_end:
        feats, kept, skipped = dataset_frames(clips, vm.sampling, vm.extractor.frame_size, cache=cache,
                                              skip_invalid=skip_invalid, scene_threshold=threshold)
    else:
        feats, kept, skipped = dataset_features(vm.extractor, clips, vm.sampling, cache=cache,
                                                skip_invalid=skip_invalid, scene_threshold=threshold)
    if not feats:
        raise DataError(f"{data}: no clip could be read ({len(skipped)} skipped)")
    labels = relabel(np.array([clips[i].label for i in kept]), mapping)
    probs = vm.classify(feats)
    metrics = classification_metrics(labels, probs, vm.class_names, top_k=1)
    metrics["skipped_clips"] = len(skipped)
    metrics["skipped"] = skipped
    if output is not None:
        from foveal.utils_io import ensure_output_dir
        from foveal.visualize.report import write_classification_report

        out = ensure_output_dir(output)
        write_metrics(out, metrics)
        write_classification_report(out / "report.html", title=f"foveal video evaluation of {model_path}",
                                    summary={"model": str(model_path), "data": str(data),
                                             "clips": len(labels), "skipped clips": len(skipped),
                                             "accuracy": metrics["accuracy"]},
                                    config={"sampling": str(vm.sampling), **vm.card.training}, history=None,
                                    metrics=metrics)
    return metrics


def _window_starts(duration: float, window: float, stride: float) -> np.ndarray:
    if duration <= window:
        return np.zeros(1)
    starts = np.arange(0.0, duration - window + 1e-9, stride)
    if starts[-1] + window < duration - 1e-6:  # the tail gets a window too
        starts = np.append(starts, duration - window)
    return starts


def predict_video(vm: VideoModel, path: str | os.PathLike, *, window: float = 2.0, stride: float = 1.0,
                  output: str | os.PathLike | None = None, annotate: bool = True,
                  max_width: int = 640, max_seconds: float | None = None) -> dict[str, Any]:
    """Clip label and sliding-window timeline of one video file.

    Args:
        window, stride: the timeline's windows, in seconds.
        output: a folder for ``NAME.timeline.json``, ``NAME.timeline.csv`` and (with
            ``annotate``) ``NAME.annotated.mp4``; None writes nothing.
        max_width: the annotated video is scaled down to this width at most.
        max_seconds: refuse (:class:`VideoTooLong`) a video with frames later than this many
            seconds, found while decoding (a header can understate the length).

    Returns:
        ``{"file", "label", "probability", "probabilities", "duration", "timeline": [{"start",
        "end", "label", "probability", "probabilities"}], "outputs": [...]}``.
    """
    if window <= 0 or stride <= 0:
        raise DataError(f"--window {window} and --stride {stride} must be positive")
    path = Path(path)
    info = probe(path)
    sampling, size, names = vm.sampling, vm.extractor.frame_size, vm.class_names
    threshold = float(vm.card.training.get("scene_threshold", 0.4))
    # One decoding pass: every frame's time, and frames kept at a rate that serves every window.
    per_window = sampling.amount * (1 if sampling.strategy != "scene" else 2)
    rate = sampling.amount if sampling.strategy == "fps" else max(1.0, per_window / window)
    full_frames, full_times = [], []
    kept_frames, kept_times, state = [], [], {"next": None}

    def keep(index: int, t: float) -> bool:
        if state["next"] is None:
            state["next"] = t
        if t >= state["next"] - 1e-9:
            state["next"] += 1.0 / rate
            return True
        return False

    exact = sampling.strategy != "fps"
    for _, t, frame in iter_frames(path, size):
        if max_seconds is not None and t > max_seconds:
            raise VideoTooLong(f"{path}: longer than the limit of {max_seconds:g} s (a frame at {t:.1f} s)")
        if exact:
            full_frames.append(frame)
        full_times.append(t)
        if keep(_, t):
            kept_frames.append(frame)
            kept_times.append(t)
    times = np.asarray(full_times)
    fps = info.fps or (len(times) / max(times[-1], 1e-6) if len(times) > 1 else 1.0)
    duration = float(times[-1] + 1.0 / fps) if len(times) else 0.0
    # the clip label: frames sampled as in training
    if exact:
        frames = np.stack(full_frames)
        idx = sampling.indices(times, frames, scene_threshold=threshold)
        clip_feats = vm.extractor(frames[idx])
        del full_frames, frames
    else:
        clip_feats = None
    kept_arr, kept_t = np.stack(kept_frames), np.asarray(kept_times)
    kept_feats = vm.extractor(kept_arr)
    if clip_feats is None:
        clip_feats = kept_feats
    sequences = [clip_feats]
    starts = _window_starts(duration, window, stride)
    for s in starts:
        inside = np.flatnonzero((kept_t >= s - 1e-9) & (kept_t < s + window - 1e-9))
        if inside.size == 0:
            inside = np.array([int(np.argmin(np.abs(kept_t - s)))])
        pick = sampling.indices(kept_t[inside] - kept_t[inside][0], kept_arr[inside], scene_threshold=threshold)
        sequences.append(kept_feats[inside[pick]])
    probs = vm.classify(sequences)
    timeline = [{"start": round(float(s), 3), "end": round(float(min(s + window, duration)), 3),
                 "label": names[int(np.argmax(p))], "probability": round(float(np.max(p)), 4),
                 "probabilities": {n: round(float(v), 4) for n, v in zip(names, p)}}
                for s, p in zip(starts, probs[1:])]
    clip = probs[0]
    row: dict[str, Any] = {"file": str(path), "label": names[int(np.argmax(clip))],
                           "probability": round(float(np.max(clip)), 4),
                           "probabilities": {n: round(float(v), 4) for n, v in zip(names, clip)},
                           "duration": round(duration, 3), "frames": int(len(times)), "fps": round(float(fps), 3),
                           "window": window, "stride": stride, "timeline": timeline, "outputs": []}
    if output is not None:
        from foveal.utils_io import ensure_output_dir

        out = ensure_output_dir(output)
        stem = path.stem
        row["outputs"].append(str(atomic_write_text(out / f"{stem}.timeline.json", json.dumps(row, indent=1))))
        row["outputs"].append(str(atomic_write_text(out / f"{stem}.timeline.csv", timeline_csv(row, names))))
        if annotate:
            row["outputs"].append(str(write_annotated(path, out / f"{stem}.annotated.mp4", row, max_width)))
    return row


def timeline_csv(row: dict[str, Any], names: list[str]) -> str:
    """The timeline as CSV: start, end, label, probability, one column per class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["start", "end", "label", "probability", *names])
    for w in row["timeline"]:
        writer.writerow([w["start"], w["end"], w["label"], w["probability"], *(w["probabilities"][n] for n in names)])
    return buf.getvalue()


def _label_at(timeline: list[dict[str, Any]], t: float) -> dict[str, Any]:
    """The window whose centre is nearest to ``t``."""
    centres = np.array([(w["start"] + w["end"]) / 2 for w in timeline])
    return timeline[int(np.argmin(np.abs(centres - t)))]


def write_annotated(path: Path, target: Path, row: dict[str, Any], max_width: int = 640) -> Path:
    """A copy of ``path`` (MPEG-4 Part 2 in MP4, OpenCV's always-available encoder) with the
    clip label and the current window's label and probability drawn on every frame."""
    import cv2

    info = probe(path)
    scale = min(1.0, max_width / max(info.width, 1))
    w, h = max(2, int(info.width * scale) // 2 * 2), max(2, int(info.height * scale) // 2 * 2)
    fps = row["fps"] or 25.0
    with atomic_path(target) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise DataError(f"cannot write {target}: OpenCV has no MP4 encoder here")
        try:
            for _, t, frame in iter_frames(path):
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                if bgr.shape[:2] != (h, w):
                    bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
                current = _label_at(row["timeline"], t)
                lines = [f"{current['label']} {current['probability']:.2f}  [{current['start']:.1f}-"
                         f"{current['end']:.1f} s]", f"clip: {row['label']} {row['probability']:.2f}"]
                font = max(0.35, h / 600)
                for i, text in enumerate(lines):
                    y = int((i + 1) * 22 * font * 1.6)
                    cv2.putText(bgr, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 3, cv2.LINE_AA)
                    cv2.putText(bgr, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
                writer.write(bgr)
        finally:
            writer.release()
    return target


def predict_files(vm: VideoModel, inputs: list[str], *, skip_invalid: bool = False, **kwargs: Any
                  ) -> list[dict[str, Any]]:
    """:func:`predict_video` on files and folders (searched recursively for videos); an
    unreadable file raises, or with ``skip_invalid`` gives a row with ``error``."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and is_video_file(f))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{item}: no such file or folder")
    if not files:
        raise DataError(f"no video files in {', '.join(inputs)}")
    rows = []
    for f in files:
        try:
            rows.append(predict_video(vm, f, **kwargs))
        except DataError as exc:
            if not skip_invalid:
                raise
            rows.append({"file": str(f), "error": exc.message})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'file':40s} {'label':16s} {'prob':>6s} {'seconds':>8s}  timeline"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['file'][-40:]:40s} error: {r['error']}")
            continue
        changes = []
        for w in r["timeline"]:
            if not changes or changes[-1][1] != w["label"]:
                changes.append((w["start"], w["label"]))
        tl = ", ".join(f"{s:.0f}s {lab}" for s, lab in changes[:8]) + (" ..." if len(changes) > 8 else "")
        lines.append(f"{r['file'][-40:]:40s} {r['label']:16s} {r['probability']:6.3f} {r['duration']:8.1f}  {tl}")
    return "\n".join(lines)


__all__ = ["ExportedVideoModel", "FrameSource", "VideoModel", "VideoTooLong", "evaluate_video", "format_rows", "load_video_model", "predict_files", "predict_video",
           "timeline_csv", "write_annotated"]
