"""Write the single-file HTML report of a classification run.

The report is one self-contained page: CSS is inline and every plot is a PNG embedded as a
base64 ``data:`` URI, so the file can be mailed, archived or opened offline without anything
next to it. The page is rendered by a Jinja2 template with autoescaping on, so class names,
config values and summary text from the user can never inject markup. Sections without data
are left out.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import enum
import math
import os
import tempfile
from pathlib import Path, PurePath
from typing import Any, Mapping, Sequence

import jinja2
import numpy as np
import yaml

from foveal.evaluation.classification import top_k_accuracy_key
from foveal.visualize.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_image_grid,
    plot_per_class_bars,
)

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  :root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --zebra: #f6f8fa;
          --accent: #0969da; --bg: #ffffff; }
  * { box-sizing: border-box; }
  body { margin: 0; background: #eef1f4; color: var(--fg); line-height: 1.5;
         font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
                      sans-serif; }
  main { max-width: 1100px; margin: 2rem auto; padding: 2rem 2.5rem; background: var(--bg);
         border-radius: 10px; box-shadow: 0 1px 4px rgba(0, 0, 0, .08); }
  header h1 { margin: 0 0 .25rem; font-size: 1.7rem; }
  header p { margin: 0; color: var(--muted); font-size: .9rem; }
  nav { margin: 1.25rem 0 .5rem; display: flex; flex-wrap: wrap; gap: .4rem 1rem;
        font-size: .9rem; }
  nav a { color: var(--accent); text-decoration: none; }
  nav a:hover { text-decoration: underline; }
  section { margin-top: 2.25rem; }
  h2 { font-size: 1.25rem; border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
  h3 { font-size: 1rem; margin-top: 1.5rem; }
  table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
  th, td { padding: .35rem .8rem; text-align: left; border-bottom: 1px solid var(--line); }
  th { background: #eaeef2; font-weight: 600; }
  tbody tr:nth-child(even) { background: var(--zebra); }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.muted td { color: var(--muted); }
  .kv th { width: 14rem; background: transparent; font-weight: 600; }
  .cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: .5rem 0 1rem; }
  .card { flex: 1 1 9rem; border: 1px solid var(--line); border-radius: 8px;
          padding: .75rem 1rem; }
  .card .label { color: var(--muted); font-size: .8rem; text-transform: uppercase;
                 letter-spacing: .03em; }
  .card .value { font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; }
  figure { margin: 1rem 0; overflow-x: auto; }
  figure img { max-width: 100%; height: auto; display: block; }
  figcaption { color: var(--muted); font-size: .85rem; margin-top: .3rem; }
  pre { background: var(--zebra); border: 1px solid var(--line); border-radius: 6px;
        padding: .9rem 1rem; overflow-x: auto; font-size: .85rem; line-height: 1.4; }
  footer { margin-top: 2.5rem; color: var(--muted); font-size: .8rem; }
</style>
</head>
<body>
<main>
<header>
  <h1>{{ title }}</h1>
  <p>Report generated {{ generated }}</p>
</header>
<nav>
{% for anchor, heading in toc %}
  <a href="#{{ anchor }}">{{ heading }}</a>
{% endfor %}
</nav>
{% if summary %}
<section id="summary">
  <h2>Summary</h2>
  <table class="kv">
    <tbody>
    {% for key, value in summary %}
      <tr><th>{{ key }}</th><td>{{ value }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
</section>
{% endif %}
{% if history_png %}
<section id="training">
  <h2>Training curves</h2>
  <figure>
    <img src="{{ history_png }}" alt="training curves">
    <figcaption>Per-epoch values; the circle marks the best validation epoch.</figcaption>
  </figure>
</section>
{% endif %}
{% if headline %}
<section id="metrics">
  <h2>Metrics</h2>
  <div class="cards">
  {% for label, value in headline %}
    <div class="card"><div class="label">{{ label }}</div><div class="value">{{ value }}</div></div>
  {% endfor %}
  </div>
  {% if averages %}
  <table>
    <thead><tr><th>average</th><th class="num">precision</th><th class="num">recall</th>
      <th class="num">F1</th></tr></thead>
    <tbody>
    {% for name, avg in averages %}
      <tr><td>{{ name }}</td><td class="num">{{ avg.precision }}</td>
        <td class="num">{{ avg.recall }}</td><td class="num">{{ avg.f1 }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
</section>
{% endif %}
{% if per_class %}
<section id="per-class">
  <h2>Per-class results</h2>
  <table>
    <thead><tr><th>class</th><th class="num">precision</th><th class="num">recall</th>
      <th class="num">F1</th><th class="num">support</th></tr></thead>
    <tbody>
    {% for row in per_class %}
      <tr{% if row.support == 0 %} class="muted"{% endif %}><td>{{ row.name }}</td>
        <td class="num">{{ row.precision }}</td><td class="num">{{ row.recall }}</td>
        <td class="num">{{ row.f1 }}</td><td class="num">{{ row.support }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% if per_class_png %}
  <figure><img src="{{ per_class_png }}" alt="per-class precision, recall and F1"></figure>
  {% endif %}
</section>
{% endif %}
{% if confusion_png %}
<section id="confusion">
  <h2>Confusion matrix</h2>
  <figure>
    <img src="{{ confusion_png }}" alt="confusion matrix">
    <figcaption>Rows are true classes, columns predicted classes; colour is the fraction of
      each true class.</figcaption>
  </figure>
</section>
{% endif %}
{% if misclassified_png %}
<section id="misclassified">
  <h2>Misclassified examples</h2>
  <figure><img src="{{ misclassified_png }}" alt="misclassified examples"></figure>
</section>
{% endif %}
{% for section in extra %}
<section id="{{ section.anchor }}">
  <h2>{{ section.heading }}</h2>
  {% if section.is_html %}{{ section.body }}{% else %}<pre>{{ section.body }}</pre>{% endif %}
</section>
{% endfor %}
{% if config_yaml %}
<section id="config">
  <h2>Resolved configuration</h2>
  <pre>{{ config_yaml }}</pre>
</section>
{% endif %}
<footer>Written by foveal.</footer>
</main>
</body>
</html>
"""

_ENV = jinja2.Environment(
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)


def png_data_uri(png: bytes) -> str:
    """Return ``png`` as a ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _format_value(value: Any) -> str:
    """Human-friendly text for a summary value: floats get a sensible number of digits."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def _score(value: float) -> str:
    """A metric in [0, 1] (or a loss) with four decimals."""
    return f"{value:.4f}"


def _plain(value: Any) -> Any:
    """Recursively turn ``value`` into types ``yaml.safe_dump`` accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def _metric_context(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Template variables (formatted numbers and embedded plots) for the metric sections."""
    headline: list[tuple[str, str]] = []
    if "accuracy" in metrics:
        headline.append(("accuracy", _score(metrics["accuracy"])))
    key = top_k_accuracy_key(dict(metrics))
    if key is not None:
        headline.append((f"top-{key[4:-9]} accuracy", _score(metrics[key])))
    for name in ("macro_avg", "weighted_avg"):
        if metrics.get(name):
            headline.append((f"{name.split('_')[0]} F1", _score(metrics[name]["f1"])))
    if "loss" in metrics:
        headline.append(("loss", _score(metrics["loss"])))
    if "num_examples" in metrics:
        headline.append(("examples", _format_value(int(metrics["num_examples"]))))
    averages = [
        (label, {k: _score(metrics[name][k]) for k in ("precision", "recall", "f1")})
        for name, label in (("macro_avg", "macro"), ("weighted_avg", "weighted"))
        if metrics.get(name)
    ]
    per_class_rows = metrics.get("per_class") or []
    per_class = [
        {
            "name": str(row["class"]),
            "precision": _score(row["precision"]),
            "recall": _score(row["recall"]),
            "f1": _score(row["f1"]),
            "support": int(row["support"]),
        }
        for row in per_class_rows
    ]
    per_class_png = png_data_uri(plot_per_class_bars(per_class_rows)) if per_class_rows else None
    confusion_png = None
    if metrics.get("confusion_matrix") and per_class_rows:
        names = [str(row["class"]) for row in per_class_rows]
        confusion_png = png_data_uri(plot_confusion_matrix(metrics["confusion_matrix"], names))
    return {
        "headline": headline,
        "averages": averages,
        "per_class": per_class,
        "per_class_png": per_class_png,
        "confusion_png": confusion_png,
    }


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder + ``os.replace``.

    A reader (or a crash) never sees a half-written report, and an old report at ``path`` is
    kept intact until the new one is complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file 0600, but a report is meant to be shared (and possibly
        # served): keep the mode of the report it replaces, else make it world-readable.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_classification_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    summary: Mapping[str, str | float | int],
    config: Mapping[str, Any],
    history: Mapping[str, Sequence[float]] | None,
    metrics: Mapping[str, Any] | None,
    misclassified: tuple[np.ndarray, Sequence[str]] | None = None,
    extra_sections: Sequence[tuple[str, str]] | None = None,
) -> Path:
    """Write a self-contained HTML report of a classification run.

    Args:
        path: Where to write the ``.html`` file; parent folders are created. The file is
            replaced atomically.
        title: Page title and main heading.
        summary: Key/value rows of the summary table (run name, model, dataset, epochs, wall
            time, test accuracy, ...), shown in the given order; floats are rounded for display.
        config: The resolved configuration, shown YAML-dumped (paths, tuples, enums, NumPy
            values and dataclasses are converted; anything else is shown with ``str``).
        history: Per-epoch training values (``keras.callbacks.History.history``) or None.
        metrics: The output of :func:`foveal.evaluation.classification_metrics` or None.
        misclassified: ``(images, titles)`` for :func:`~foveal.visualize.plots.plot_image_grid`
            (uint8 ``(N, H, W, C)`` images, one caption each), or None.
        extra_sections: Further ``(heading, body)`` sections placed before the configuration.
            A plain ``str`` body is escaped and shown preformatted; a ``markupsafe.Markup``
            body is trusted HTML and inserted as is (e.g. an ``<img>`` built with
            :func:`png_data_uri`).

    Returns:
        The path written, as a :class:`~pathlib.Path`.

    Raises:
        FovealError: If ``history``, ``metrics`` or ``misclassified`` are malformed in a way
            the plotting functions reject.
    """
    path = Path(path)
    context: dict[str, Any] = {
        "title": title,
        "generated": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "summary": [(str(k), _format_value(v)) for k, v in summary.items()],
        "history_png": None,
        "headline": [],
        "averages": [],
        "per_class": [],
        "per_class_png": None,
        "confusion_png": None,
        "misclassified_png": None,
        "extra": [],
        "config_yaml": None,
    }
    if history and any(len(values) for values in history.values()):
        context["history_png"] = png_data_uri(plot_history(dict(history)))
    if metrics:
        context.update(_metric_context(metrics))
    if misclassified is not None and len(misclassified[0]) > 0:
        images, captions = misclassified
        context["misclassified_png"] = png_data_uri(plot_image_grid(images, list(captions)))
    for index, (heading, body) in enumerate(extra_sections or []):
        context["extra"].append(
            {
                "anchor": f"extra-{index + 1}",
                "heading": heading,
                "body": body,
                "is_html": hasattr(body, "__html__"),
            }
        )
    if config:
        context["config_yaml"] = yaml.safe_dump(
            _plain(config), sort_keys=False, default_flow_style=None, allow_unicode=True
        ).rstrip()

    toc = [
        ("summary", "Summary", context["summary"]),
        ("training", "Training curves", context["history_png"]),
        ("metrics", "Metrics", context["headline"]),
        ("per-class", "Per-class results", context["per_class"]),
        ("confusion", "Confusion matrix", context["confusion_png"]),
        ("misclassified", "Misclassified examples", context["misclassified_png"]),
    ]
    toc += [(s["anchor"], s["heading"], True) for s in context["extra"]]
    toc.append(("config", "Configuration", context["config_yaml"]))
    context["toc"] = [(anchor, heading) for anchor, heading, present in toc if present]

    html = _ENV.from_string(_TEMPLATE).render(**context)
    _write_atomically(path, html)
    return path


def write_task_report(path: str | os.PathLike[str], *, title: str, summary: Mapping[str, Any],
                      config: Mapping[str, Any], history: Mapping[str, Sequence[float]] | None,
                      extra_sections: Sequence[tuple[str, Any]]) -> Path:
    """The report of a task other than classification: the same page (summary, curves, options)
    with the task's own sections instead of the classification metrics; ``epoch_seconds`` is
    left out of the curves."""
    curves = {k: v for k, v in (history or {}).items() if k != "epoch_seconds"}
    return write_classification_report(path, title=title, summary=summary, config=config, history=curves or None,
                                       metrics=None, extra_sections=extra_sections)


def figure_section(heading: str, png: bytes, alt: str, before: Any = "") -> tuple[str, Any]:
    """A report section holding one embedded PNG figure (after ``before``, e.g. a legend)."""
    from markupsafe import Markup

    return heading, before + Markup('<figure><img src="{}" alt="{}"></figure>').format(png_data_uri(png), alt)


def html_table(head: Sequence[Any], rows: Sequence[Sequence[Any]], *, numeric_from: int = 1, note: Any = ""):
    """A report table (Markup): the ``head`` cells, then ``rows``, columns from ``numeric_from`` on
    right-aligned as numbers, then the paragraph ``note``; text that is not Markup is escaped."""
    from markupsafe import Markup, escape

    def cells(values: Sequence[Any], tag: str) -> str:
        return "".join(f'<{tag} class="num">{escape(v)}</{tag}>' if i >= numeric_from else f"<{tag}>{escape(v)}</{tag}>"
                       for i, v in enumerate(values))

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return Markup(f"<table><thead><tr>{cells(head, 'th')}</tr></thead><tbody>{body}</tbody></table>"
                  + (f"<p>{escape(note)}</p>" if note else ""))
