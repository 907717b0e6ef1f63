"""Multi-object tracking scores: CLEAR MOT (MOTA, MOTP) and the identity scores (IDF1, IDP, IDR).

Both compare per-frame boxes with ids (ground truth vs. the tracker's output), matching a
ground-truth box and a tracked box only when their IoU is at least ``iou_threshold`` (0.5, as
the MOT Challenge), without regard to class.

* CLEAR MOT (Bernardin & Stiefelhagen, "Evaluating Multiple Object Tracking Performance",
  EURASIP JIVP 2008): frame by frame, a ground-truth object keeps the track it was matched to in
  the previous frame while their IoU stays above the threshold; the others are matched by the
  Hungarian algorithm on ``1 - IoU``. Unmatched ground truth are misses (FN), unmatched tracks
  false positives (FP), and an object matched to a different track id than at its last match is
  an identity switch (IDSW). ``MOTA = 1 - (FN + FP + IDSW) / GT``; ``MOTP`` here is the mean IoU
  of the matches (higher is better).
* Identity scores (Ristani et al., "Performance Measures and a Data Set for Multi-Target,
  Multi-Camera Tracking", ECCV 2016 workshops): whole ground-truth trajectories are matched
  one-to-one with whole track trajectories so that the frames where a matched pair overlaps
  (IDTP) are as many as possible (Hungarian on the pair counts; this minimises IDFN + IDFP).
  ``IDF1 = 2 IDTP / (GT + detections)``, ``IDP = IDTP / detections``, ``IDR = IDTP / GT``.

These follow the conventions of py-motmetrics (the MOT Challenge's Python tool), which foveal
does not depend on (it pulls in pandas); the tests check both scores on cases computed by hand.

Example:
    >>> gt = {1: [(1, [0, 0, 10, 10])], 2: [(1, [1, 0, 11, 10])]}
    >>> hyp = {1: [(7, [0, 0, 10, 10])], 2: [(7, [1, 0, 11, 10])]}
    >>> s = mot_scores(gt, hyp)
    >>> s["mota"], s["idf1"]
    (1.0, 1.0)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from foveal.errors import DataError
from foveal.ops.boxes import iou_matrix

#: frame -> [(id, [x0, y0, x1, y1]), ...]
Frames = dict[int, list[tuple[int, list[float]]]]


def read_mot(path: str | os.PathLike) -> Frames:
    """Read a MOT Challenge text file (``frame,id,left,top,width,height[,conf,class,visibility]``):
    ground truth or tracker output. Ground-truth rows whose 7th column (``conf``, "consider") is 0
    are left out, as the MOT Challenge does.

    Raises:
        DataError: the file is missing or a row is not ``frame,id,left,top,width,height,...``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MOT file not found")
    frames: Frames = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.replace(" ", "").split(",")
        try:
            frame, tid = int(float(parts[0])), int(float(parts[1]))
            left, top, width, height = (float(v) for v in parts[2:6])
            consider = float(parts[6]) if len(parts) > 6 and parts[6] not in ("", "-1") else 1.0
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: not a MOT row frame,id,left,top,width,height,... ({line[:60]!r})") from None
        if consider == 0:
            continue
        frames.setdefault(frame, []).append((tid, [left, top, left + width, top + height]))
    if not frames:
        raise DataError(f"{path}: no boxes")
    return frames


def frames_of_tracks(tracks: dict[Any, list[dict[str, Any]]]) -> Frames:
    """:func:`~foveal.video.track.track_video`'s ``tracks`` (id -> [{frame, box}]) as :data:`Frames`."""
    frames: Frames = {}
    for tid, items in tracks.items():
        for item in items:
            frames.setdefault(int(item["frame"]), []).append((int(tid), list(item["box"])))
    return frames


def _boxes(items: list[tuple[int, list[float]]]) -> tuple[list[int], np.ndarray]:
    return [i for i, _ in items], np.asarray([b for _, b in items], np.float64).reshape(-1, 4)


def mot_scores(gt: Frames, hyp: Frames, iou_threshold: float = 0.5) -> dict[str, Any]:
    """CLEAR MOT and identity scores of ``hyp`` against ``gt`` (see the module docstring).

    Returns:
        ``{"mota", "motp", "idf1", "idp", "idr", "gt", "detections", "matches", "fn", "fp",
        "idsw", "idtp", "frames", "gt_tracks", "tracks", "iou_threshold"}``.
    """
    from scipy.optimize import linear_sum_assignment

    last: dict[int, int] = {}  # gt id -> the track id of its last match
    previous: dict[int, int] = {}  # gt id -> track id matched in the previous frame
    fn = fp = idsw = matches = 0
    iou_sum = 0.0
    pair_counts: dict[tuple[int, int], int] = {}
    gt_len: dict[int, int] = {}
    hyp_len: dict[int, int] = {}
    frames = sorted(set(gt) | set(hyp))
    for f in frames:
        g_ids, g_boxes = _boxes(gt.get(f, []))
        h_ids, h_boxes = _boxes(hyp.get(f, []))
        for i in g_ids:
            gt_len[i] = gt_len.get(i, 0) + 1
        for j in h_ids:
            hyp_len[j] = hyp_len.get(j, 0) + 1
        iou = iou_matrix(g_boxes, h_boxes) if len(g_ids) and len(h_ids) else np.zeros((len(g_ids), len(h_ids)))
        ok = iou >= iou_threshold
        for a, b in zip(*np.nonzero(ok)):  # identity scores: every overlapping pair of this frame
            key = (g_ids[a], h_ids[b])
            pair_counts[key] = pair_counts.get(key, 0) + 1
        matched: dict[int, int] = {}  # row -> column
        h_index = {j: c for c, j in enumerate(h_ids)}
        for r, g in enumerate(g_ids):  # continuing matches are kept while they still overlap
            c = h_index.get(previous.get(g, -1))
            if c is not None and ok[r, c] and c not in matched.values():
                matched[r] = c
        rows = [r for r in range(len(g_ids)) if r not in matched]
        cols = [c for c in range(len(h_ids)) if c not in matched.values()]
        if rows and cols:
            sub = np.where(ok[np.ix_(rows, cols)], 1.0 - iou[np.ix_(rows, cols)], 1e6)
            for a, b in zip(*linear_sum_assignment(sub)):
                if sub[a, b] < 1e6:
                    matched[rows[a]] = cols[b]
        current: dict[int, int] = {}
        for r, c in matched.items():
            g, h = g_ids[r], h_ids[c]
            if g in last and last[g] != h:
                idsw += 1
            last[g] = h
            current[g] = h
            iou_sum += float(iou[r, c])
        previous = current
        matches += len(matched)
        fn += len(g_ids) - len(matched)
        fp += len(h_ids) - len(matched)
    total_gt, total_hyp = sum(gt_len.values()), sum(hyp_len.values())
    idtp = 0
    if pair_counts:
        g_list, h_list = sorted(gt_len), sorted(hyp_len)
        counts = np.zeros((len(g_list), len(h_list)))
        gi, hi = {g: i for i, g in enumerate(g_list)}, {h: i for i, h in enumerate(h_list)}
        for (g, h), n in pair_counts.items():
            counts[gi[g], hi[h]] = n
        rows, cols = linear_sum_assignment(-counts)
        idtp = int(counts[rows, cols].sum())
    return {
        "mota": 1.0 - (fn + fp + idsw) / total_gt if total_gt else float("nan"),
        "motp": iou_sum / matches if matches else float("nan"),
        "idf1": 2 * idtp / (total_gt + total_hyp) if total_gt + total_hyp else float("nan"),
        "idp": idtp / total_hyp if total_hyp else float("nan"),
        "idr": idtp / total_gt if total_gt else float("nan"),
        "gt": total_gt, "detections": total_hyp, "matches": matches, "fn": fn, "fp": fp, "idsw": idsw,
        "idtp": idtp, "frames": len(frames), "gt_tracks": len(gt_len), "tracks": len(hyp_len),
        "iou_threshold": iou_threshold,
    }


def format_scores(s: dict[str, Any]) -> str:
    """One line: MOTA, IDF1 and the counts behind them."""
    return (f"MOTA {s['mota']:.3f}  IDF1 {s['idf1']:.3f}  MOTP(IoU) {s['motp']:.3f}  IDP {s['idp']:.3f}  "
            f"IDR {s['idr']:.3f}  (GT {s['gt']}, FN {s['fn']}, FP {s['fp']}, IDSW {s['idsw']}, "
            f"{s['gt_tracks']} true / {s['tracks']} tracked ids, IoU >= {s['iou_threshold']})")


__all__ = ["Frames", "format_scores", "frames_of_tracks", "mot_scores", "read_mot"]
