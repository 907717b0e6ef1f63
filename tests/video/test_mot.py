"""MOTA and IDF1 on tracking cases counted by hand; MOT files read back; the moving-shapes
generator deterministic per seed with ground truth that matches its frames."""

from __future__ import annotations

import numpy as np
import pytest

from foveal.errors import DataError
from foveal.video.mot import mot_scores, read_mot


def _box(x: float, y: float = 0.0, s: float = 10.0) -> list[float]:
    return [x, y, x + s, y + s]


def test_mota_and_idf1_of_a_case_counted_by_hand():
    # two objects over 4 frames: A (id 1) near x=0, B (id 2) near x=100
    gt = {f: [(1, _box(f)), (2, _box(100 + f))] for f in range(1, 5)}
    hyp = {
        1: [(10, _box(1)), (20, _box(101))],
        2: [(10, _box(2)), (20, _box(102))],
        3: [(30, _box(3)), (99, _box(50))],  # A taken over by track 30 (a switch), B missed, a false box
        4: [(30, _box(4)), (20, _box(104))],  # B found again by its own track: no switch
    }
    s = mot_scores(gt, hyp)
    assert (s["gt"], s["detections"], s["matches"], s["fn"], s["fp"], s["idsw"]) == (8, 8, 7, 1, 1, 1)
    assert s["mota"] == pytest.approx(1 - 3 / 8)  # 0.625
    # trajectories: A-10 overlap 2 frames, A-30 2, B-20 3; best one-to-one: A-10 (or 30) + B-20 = 5
    assert s["idtp"] == 5 and s["idf1"] == pytest.approx(2 * 5 / 16)
    assert s["idp"] == pytest.approx(5 / 8) and s["idr"] == pytest.approx(5 / 8)
    assert s["motp"] == pytest.approx(1.0)


def test_a_continuing_match_is_kept_over_a_better_new_one_and_misaligned_boxes_do_not_match():
    gt = {1: [(1, _box(0))], 2: [(1, _box(0))], 3: [(1, _box(0))]}
    hyp = {
        1: [(5, _box(0))],
        2: [(5, _box(2)), (6, _box(0))],  # track 5 still overlaps (IoU 0.67 >= 0.5): kept, 6 is a FP
        3: [(6, _box(7))],  # IoU 0.18: no match (a miss and a false positive)
    }
    s = mot_scores(gt, hyp)
    assert (s["matches"], s["fn"], s["fp"], s["idsw"]) == (2, 1, 2, 0)
    assert s["mota"] == pytest.approx(1 - 3 / 3)
    assert s["motp"] == pytest.approx((1.0 + 8 * 10 / (200 - 80)) / 2)
    assert s["idtp"] == 2 and s["idf1"] == pytest.approx(4 / 7)


def test_read_mot_ground_truth_and_tracker_rows(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,10,20,30,40,1,1,1\n1,2,0,0,5,5,0,1,1\n2,1,11,20,30,40,1,1,1\n")
    frames = read_mot(path)
    assert frames == {1: [(1, [10.0, 20.0, 40.0, 60.0])], 2: [(1, [11.0, 20.0, 41.0, 60.0])]}  # conf 0 left out
    tracker = tmp_path / "t.txt"
    tracker.write_text("1,7,10.00,20.00,30.00,40.00,0.9000,-1,-1,-1\n")
    assert read_mot(tracker) == {1: [(7, [10.0, 20.0, 40.0, 60.0])]}
    bad = tmp_path / "bad.txt"
    bad.write_text("1,2,three\n")
    with pytest.raises(DataError) as err:
        read_mot(bad)
    assert "bad.txt:1" in err.value.message


def test_moving_shapes_are_deterministic_and_their_boxes_hold_the_shapes():
    from foveal.video.synth import moving_shapes

    a, truth = moving_shapes(12, (64, 64), 2, seed=3, radius=(6, 9))
    b, truth_b = moving_shapes(12, (64, 64), 2, seed=3, radius=(6, 9))
    c, _ = moving_shapes(12, (64, 64), 2, seed=4, radius=(6, 9))
    assert np.array_equal(a, b) and truth == truth_b and not np.array_equal(a, c)
    for frame, boxes in zip(a, truth):
        assert sorted(o["id"] for o in boxes) == [1, 2]
        for o in boxes:
            x0, y0, x1, y1 = (int(v) for v in o["box"])
            assert 0 <= x0 < x1 < 64 and 0 <= y0 < y1 < 64
            centre = frame[(y0 + y1) // 2, (x0 + x1) // 2].astype(int)
            assert centre.max() > 150  # the shape's colour, not the dark background
    moved = [np.subtract(t1[0]["box"], t0[0]["box"]) for t0, t1 in zip(truth, truth[1:])]
    assert all(0 < np.abs(m[:2]).max() <= 5 for m in moved)  # moves each frame, at most the top speed
