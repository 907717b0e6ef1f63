"""Image file checks: what passes, and the exact problem reported for what does not."""

from __future__ import annotations

from PIL import Image

from foveal.data import imagecheck
from foveal.data.imagecheck import check_image_file, probe_image, scan_files

from .conftest import MIXED


def test_decodable_modes_and_formats_are_fine(tmp_path, write_image):
    for name, (mode, fmt) in MIXED.items():
        path = write_image(tmp_path / name, mode, fmt=fmt)
        for full in (False, True):
            assert check_image_file(path, full=full, max_pixels=10_000) is None, (name, full)


def test_probe_reports_header_facts(tmp_path, write_image):
    probe = probe_image(write_image(tmp_path / "x.png", "LA", size=(5, 3)), full=False)
    assert (probe.width, probe.height, probe.mode, probe.format) == (5, 3, "LA", "PNG")


def test_text_file_with_image_extension_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, not pixels")
    assert check_image_file(path, full=False, max_pixels=1000) == "not an image file"


def test_empty_and_missing_files(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert check_image_file(path, full=True, max_pixels=1000) == "empty file"
    assert check_image_file(tmp_path / "gone.png", full=False).startswith("cannot read")


def test_truncated_files_found_by_header_and_full_check(tmp_path, write_image):
    for name in ("cut.jpg", "cut.png"):
        path = write_image(tmp_path / name, "RGB", size=(64, 64))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        for full in (False, True):  # the header check looks for the end marker (issue #20)
            problem = check_image_file(path, full=full, max_pixels=10_000)
            assert problem is not None and problem.startswith("truncated or corrupt: "), name


def test_decompression_bomb_by_our_limit(tmp_path, write_image):
    path = write_image(tmp_path / "big.png", "L", size=(64, 64))
    for full in (False, True):
        problem = check_image_file(path, full=full, max_pixels=1000)
        assert problem == "image has 4096 pixels, over the limit of 1000 (decompression bomb?)"


def test_pil_global_limit_is_handled_and_restored(tmp_path, write_image, monkeypatch):
    path = write_image(tmp_path / "big.png", "L", size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL itself refuses > 200 pixels
    problem = check_image_file(path, full=False, max_pixels=1000)
    assert "4096 pixels, over the limit of 1000" in problem
    # A caller allowing more than PIL would open gets its own limit, then PIL's is restored.
    assert check_image_file(path, full=True, max_pixels=5000) is None
    assert Image.MAX_IMAGE_PIXELS == 100


def test_formats_tensorflow_cannot_decode_are_refused(tmp_path, write_image):
    path = write_image(tmp_path / "scan.png", "RGB", fmt="TIFF")
    assert check_image_file(path, full=False).startswith("unsupported format TIFF")
    path = write_image(tmp_path / "bits.bmp", "1", fmt="BMP")
    assert check_image_file(path, full=False).startswith("unsupported BMP: 1 bits per pixel")


def test_scan_files_parallel_returns_only_problems(tmp_path, write_image, monkeypatch, capsys):
    paths = [write_image(tmp_path / f"{i:02d}.png", "L", seed=i) for i in range(30)]
    paths[7].write_bytes(b"garbage")
    paths[21].write_bytes(b"")
    monkeypatch.setattr(imagecheck, "PROGRESS_THRESHOLD", 10)
    problems = scan_files(paths, full=True, max_pixels=1000, workers=4, progress=True)
    assert problems == {str(paths[7]): "not an image file", str(paths[21]): "empty file"}
    assert "checking images" not in capsys.readouterr().out  # the bar goes to stderr
