"""The plots are decodable PNGs and the HTML report is complete, escaped and self-contained."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from markupsafe import Markup
from PIL import Image

from foveal.errors import FovealError
from foveal.evaluation import classification_metrics
from foveal.visualize import (
    plot_confusion_matrix,
    plot_history,
    plot_image_grid,
    plot_per_class_bars,
    png_data_uri,
    write_classification_report,
)
from foveal.visualize import report as report_module

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"
CLASS_NAMES = ["airplane", "cat", EVIL]


def _decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    return image


def _assert_sensible(image: Image.Image, min_side: int = 200, max_side: int = 4000) -> None:
    width, height = image.size
    assert min_side <= width <= max_side and min_side <= height <= max_side, image.size


@pytest.fixture(scope="module")
def history() -> dict[str, list[float]]:
    epochs = 6
    return {
        "loss": list(np.linspace(1.5, 0.4, epochs)),
        "val_loss": list(np.linspace(1.6, 0.6, epochs)),
        "accuracy": list(np.linspace(0.4, 0.9, epochs)),
        "val_accuracy": list(np.linspace(0.35, 0.8, epochs)),
        "top_2_accuracy": list(np.linspace(0.7, 1.0, epochs)),
        "learning_rate": [1e-3] * 3 + [1e-4] * 3,
    }


@pytest.fixture(scope="module")
def metrics() -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=60)
    probs = rng.dirichlet(np.ones(3), size=60)
    probs[np.arange(60), labels] += 0.6
    probs /= probs.sum(axis=1, keepdims=True)
    return classification_metrics(labels, probs, CLASS_NAMES, top_k=2)


def test_plot_history(history: dict[str, list[float]], tmp_path: Path) -> None:
    target = tmp_path / "plots" / "history.png"
    png = plot_history(history, path=target)
    _assert_sensible(_decode(png))
    assert target.read_bytes() == png


def test_plot_history_accepts_lr_and_partial_keys() -> None:
    _assert_sensible(_decode(plot_history({"val_loss": [1.0, 0.5], "lr": [0.1, 0.01]})))
    with pytest.raises(FovealError, match="empty"):
        plot_history({})
    with pytest.raises(FovealError, match="empty"):
        plot_history({"loss": []})


@pytest.mark.parametrize("normalize", [True, False])
def test_plot_confusion_matrix(metrics: dict, normalize: bool) -> None:
    png = plot_confusion_matrix(metrics["confusion_matrix"], CLASS_NAMES, normalize=normalize)
    _assert_sensible(_decode(png))


def test_plot_confusion_matrix_many_classes_and_empty_rows() -> None:
    names = [f"class number {i}" for i in range(30)]
    cm = np.zeros((30, 30), dtype=int)
    cm[np.arange(29), np.arange(29)] = 5  # the last class has no examples
    _assert_sensible(_decode(plot_confusion_matrix(cm, names)))
    with pytest.raises(FovealError, match="3x3"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"])


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_image_grid(channels: int) -> None:
    rng = np.random.default_rng(channels)
    images = rng.integers(0, 256, size=(10, 12, 12, channels), dtype=np.uint8)
    titles = [f"true cat, predicted dog (p=0.{i}3)" for i in range(10)]
    image = _decode(plot_image_grid(images, titles, cols=4))
    _assert_sensible(image)
    width, height = image.size
    assert height > width / 4 * 2  # three rows of four columns


def test_plot_image_grid_rejects_bad_input() -> None:
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(FovealError, match="titles"):
        plot_image_grid(images, ["one"])
    with pytest.raises(FovealError, match="uint8"):
        plot_image_grid(images.astype(np.float32), ["a", "b"])
    with pytest.raises(FovealError, match="C 1 or 3"):
        plot_image_grid(np.zeros((2, 8, 8, 4), dtype=np.uint8), ["a", "b"])


def test_plot_per_class_bars(metrics: dict) -> None:
    _assert_sensible(_decode(plot_per_class_bars(metrics["per_class"])))
    with pytest.raises(FovealError):
        plot_per_class_bars([])


class _Collector(HTMLParser):
    """Collects start tags, image sources, section ids and script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.sections: list[str] = []
        self.scripts = 0
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "section":
            self.sections.append(attributes.get("id") or "")
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.links.append(attributes.get("href") or "")


def _parse(path: Path) -> tuple[str, _Collector]:
    text = path.read_text(encoding="utf-8")
    collector = _Collector()
    collector.feed(text)
    collector.close()
    return text, collector


def test_full_report(history: dict, metrics: dict, tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    captions = [f"true {EVIL}\npredicted cat (p=0.93)", "b", "c"]
    out = write_classification_report(
        tmp_path / "run" / "report.html",
        title="digits-demo",
        summary={"run name": "digits-demo", "model": "lenet5", "epochs": 6,
                 "wall time (s)": 12.3456, "test accuracy": metrics["accuracy"]},
        config={"model": {"name": "lenet5", "input_shape": (28, 28, 1)},
                "data": {"root": tmp_path, "classes": CLASS_NAMES}},
        history=history,
        metrics=metrics,
        misclassified=(images, captions),
        extra_sections=[("Model summary", "Layer <Dense> 10"), ("Trusted", Markup("<b>ok</b>"))],
    )
    assert out == tmp_path / "run" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left

    text, parsed = _parse(out)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert parsed.sections == [
        "summary", "training", "metrics", "per-class", "confusion", "misclassified",
        "extra-1", "extra-2", "config",
    ]
    # Self-contained: every image is an embedded PNG, nothing is fetched from elsewhere.
    assert len(parsed.images) == 4
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        _decode(base64.b64decode(src.split(",", 1)[1]))
    assert parsed.links == []
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    # User text is escaped: the malicious class name never becomes a <script> element.
    assert parsed.scripts == 0
    assert EVIL not in text
    assert "&lt;script&gt;" in text
    assert "Layer &lt;Dense&gt; 10" in text and "<b>ok</b>" in text
    for name in ["airplane", "cat", "lenet5", "digits-demo", "12.3456", "input_shape"]:
        assert name in text


def test_report_omits_empty_sections(tmp_path: Path) -> None:
    out = write_classification_report(
        tmp_path / "report.html",
        title="only a summary",
        summary={"run name": "x"},
        config={},
        history=None,
        metrics=None,
        misclassified=(np.zeros((0, 8, 8, 1), dtype=np.uint8), []),
    )
    _, parsed = _parse(out)
    assert parsed.sections == ["summary"]
    assert parsed.images == []


def test_report_replaces_existing_file_and_cleans_up_on_error(
    history: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    write_classification_report(
        target, title="t", summary={}, config={"a": 1}, history=history, metrics=None
    )
    assert "Training curves" in target.read_text(encoding="utf-8")
    before = target.read_bytes()
    with pytest.raises(FovealError):
        write_classification_report(
            target, title="t", summary={}, config={}, history=None, metrics=None,
            misclassified=(np.zeros((2, 8, 8, 3), dtype=np.uint8), ["only one title"]),
        )
    assert target.read_bytes() == before

    def failing_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_classification_report(
            target, title="new", summary={"a": 1}, config={}, history=None, metrics=None
        )
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_png_data_uri_round_trips() -> None:
    uri = png_data_uri(PNG_SIGNATURE + b"rest")
    assert base64.b64decode(uri.removeprefix("data:image/png;base64,")) == PNG_SIGNATURE + b"rest"
