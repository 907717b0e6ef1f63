"""SORT-style tracking against hand-made tracks: ids kept through constant motion, crossings
and detector gaps; the Kalman filter against its closed form; MOT text."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.video.track import KalmanBox, SortTracker, associate, mot_lines


def _truth(frames: int = 30):
    """Two boxes moving right and left at constant speed, crossing at different heights."""
    a = [np.array([10 + 4 * t, 10, 40 + 4 * t, 40], float) for t in range(frames)]
    b = [np.array([150 - 4 * t, 60, 180 - 4 * t, 100], float) for t in range(frames)]
    return a, b


def test_associate_is_the_maximum_iou_matching_and_respects_threshold_and_classes():
    tracks = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60.]])
    dets = np.array([[21, 21, 31, 31], [1, 0, 11, 10], [100, 100, 110, 110.]])
    pairs, lost, new = associate(tracks, dets, 0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)] and lost == [2] and new == [2]
    classes = np.array([0, 1, 0])
    assert sorted(associate(tracks, dets, 0.3, classes, np.array([1, 0, 0]))[0]) == [(0, 1), (1, 0)]
    assert associate(tracks, dets, 0.3, classes, np.array([0, 1, 0]))[0] == []  # classes differ


def test_associate_equals_brute_force_over_permutations():
    import itertools

    from foveal.ops.boxes import iou_matrix

    rng = np.random.default_rng(3)
    for _ in range(20):
        xy = rng.uniform(0, 40, (8, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 20, (8, 2))], 1)
        a, b = boxes[:4], boxes[4:] + rng.uniform(-3, 3, (4, 4))
        iou = iou_matrix(a, b)
        best = max(sum(iou[i, p[i]] for i in range(4)) for p in itertools.permutations(range(4)))
        pairs, _, _ = associate(a, b, 1e-9)
        kept = sum(iou[i, j] for i, j in pairs)
        assert kept == pytest.approx(best) or kept >= best - 1e-9


def test_kalman_learns_a_constant_velocity():
    kf = KalmanBox(np.array([0, 0, 10, 10.]))
    for t in range(1, 15):
        kf.predict()
        kf.update(np.array([3 * t, 0, 3 * t + 10, 10.]))
    predicted = kf.predict()
    assert np.allclose(predicted, [45, 0, 55, 10], atol=0.5)


@pytest.mark.parametrize("every", [1, 3])
def test_ids_follow_the_hand_made_tracks(every):
    a, b = _truth()
    tracker = SortTracker(min_hits=1)
    ids_a, ids_b, errors = set(), set(), []
    for t in range(len(a)):
        if t % every == 0:
            out = tracker.update(np.stack([b[t], a[t]]), np.array([0.9, 0.8]), np.array([0, 0]))
        else:
            out = tracker.predict()
        assert len(out) == 2
        for item in out:
            box = np.asarray(item["box"])
            target = min((a[t], b[t]), key=lambda g: np.abs(g - box).sum())
            (ids_a if target is a[t] else ids_b).add(item["id"])
            errors.append(np.abs(box - target).max())
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    # the carried (predicted) boxes stay within a few pixels once the velocity is learnt
    assert np.median(errors) < 2.0


def test_tracks_end_after_max_age_and_new_objects_get_new_ids():
    tracker = SortTracker(min_hits=1, max_age=1)
    box = np.array([[0, 0, 10, 10.]])
    assert [o["id"] for o in tracker.update(box)] == [1]
    tracker.update(np.zeros((0, 4)))
    tracker.update(np.zeros((0, 4)))  # second miss: gone
    assert tracker.tracks == []
    assert [o["id"] for o in tracker.update(box)] == [2]


def test_min_hits_hides_new_tracks_until_confirmed():
    tracker = SortTracker(min_hits=3)
    box = np.array([[0, 0, 10, 10.]])
    for _ in range(3):
        tracker.update(box)
    assert tracker.update(np.array([[50, 50, 60, 60.]])) == []  # the old one missed, the new one unconfirmed


def test_mot_text_format():
    text = mot_lines([[{"id": 1, "box": [10, 20, 40, 60], "score": 0.5}], [],
                      [{"id": 2, "box": [0, 0, 1, 2], "score": 1.0}]])
    assert text.splitlines() == ["1,1,10.00,20.00,30.00,40.00,0.5000,-1,-1,-1",
                                 "3,2,0.00,0.00,1.00,2.00,1.0000,-1,-1,-1"]


def test_video_track_cli_with_a_fixed_output_detector(tmp_path, capsys):
    """A detector whose head ignores the image (zero kernel) finds the same 16 cell boxes in every
    frame: 16 tracks whose ids last the whole clip, the detector run on every 2nd frame only."""
    import json

    from foveal.cli.main import main
    from foveal.detection.model import build_detector
    from foveal.models import ModelCard, save_model
    from foveal.video.decode import probe
    from tests.video.conftest import moving_square, write_clip

    model = build_detector("geron_cnn", 1, np.array([[0.25, 0.25]], np.float32), input_shape=(32, 32, 3),
                           head_width=0, backbone_options={"width": 16})
    layer = model.get_layer(f"head_{model.levels[0]}_out")
    kernel, bias = layer.get_weights()
    bias[:] = 0.0
    bias[4] = 2.0  # objectness 0.88
    layer.set_weights([np.zeros_like(kernel), bias])
    card = ModelCard(architecture="yolo-geron_cnn", class_names=["thing"], input_shape=(32, 32, 3),
                     preprocessing="rescale", task="detect",
                     training={"anchors": [[0.25, 0.25]], "score_threshold": 0.25, "keep_aspect": False})
    det = save_model(model, tmp_path / "det.keras", card)
    clip = write_clip(tmp_path / "clip.mp4", moving_square(7, 1, w=32, h=32))
    assert main(["video", "track", str(det), str(clip), "--every", "2", "--min-hits", "1", "--output",
                 str(tmp_path / "out"), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 7 and result["detector_calls"] == 4
    assert len(result["tracks"]) == 16
    for items in result["tracks"].values():
        assert [i["frame"] for i in items] == list(range(1, 8))
        assert np.allclose([i["box"] for i in items], items[0]["box"], atol=1e-6)  # static boxes stay put
    mot = (tmp_path / "out" / "clip.mot.txt").read_text().splitlines()
    assert len(mot) == 16 * 7 and mot[0].endswith(",-1,-1,-1")
    assert probe(tmp_path / "out" / "clip.tracked.mp4").frames == 7
    # scored against its own tracks as ground truth: perfect; against shifted ones: nothing matches
    gt = tmp_path / "out" / "clip.mot.txt"
    assert main(["video", "track", str(det), str(clip), "--every", "2", "--min-hits", "1", "--gt", str(gt)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "MOTA 1.000  IDF1 1.000" in line and "IDSW 0" in line
    shifted = tmp_path / "shifted.txt"
    shifted.write_text("".join(f"{r.split(',')[0]},{r.split(',')[1]},100,100,5,5,1,1,1\n" for r in mot))
    assert main(["video", "track", str(det), str(clip), "--every", "2", "--min-hits", "1", "--gt", str(shifted),
                 "--format", "json"]) == 0
    scores = json.loads(capsys.readouterr().out)["scores"]
    assert scores["matches"] == 0 and scores["fn"] == scores["fp"] == 16 * 7 and scores["mota"] == -1.0
