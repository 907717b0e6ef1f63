"""Domain adaptation as a task of the run engine (``foveal adapt train``).

The plugin reads a labelled source and a target (unlabelled, or with a few labels per class),
builds any zoo classifier wrapped in an :class:`~foveal.adaptation.model.AdaptModel` (DANN,
CORAL, MMD or source-only), feeds batches that pair labelled and target images, scores source
and target accuracy after every epoch, and at the end trains the **source-only baseline** with
the same options in the same run, so the report shows the gain side by side. The run folder is
the engine's, plus:

* ``classifier.keras``: the adapted classifier as a plain classifier file (task ``classify``):
  ``foveal predict``, ``evaluate``, ``export``, ``benchmark``, ``serve``, ``inspect`` and
  ``prune`` take it like any classifier. ``best.keras``/``last.keras`` hold the adaptation
  model (domain head and optimizer state, for ``--resume``); ``foveal adapt evaluate|predict``
  take either.
* ``source_only.keras`` and ``source_only_history.json``: the baseline (reused on a resume).
* ``metrics.json``: target and source test scores of both models and the gain.

Example:
    >>> from foveal.tasks import run_train
    >>> run_train("adapt", AdaptConfig(source="mnist/", target="mnist-m/", channels=3))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foveal import configtools
from foveal.adaptation.config import AdaptConfig
from foveal.engine.plugin import RunData, TaskPlugin
from foveal.errors import ConfigError
from foveal.training.runs import say
from foveal.utils_io import atomic_write_text, write_metrics

if TYPE_CHECKING:
    import keras

    from foveal.adaptation.data import DomainImages, Domains
    from foveal.models import ModelCard

BASELINE_MODEL = "source_only.keras"
BASELINE_HISTORY = "source_only_history.json"
CLASSIFIER = "classifier.keras"


class AdaptTask(TaskPlugin):
    """The engine's hooks for domain-adapted classifiers."""

    name = "adapt"
    config_class = AdaptConfig
    data_help = "a labelled source dataset (--source), and --target"
    seconds_format = "g"

    def prepare(self, config: AdaptConfig | None, overrides: dict[str, Any],
                resume: str | Path | None) -> tuple[AdaptConfig | None, dict[str, Any]]:
        if resume is not None:
            return config, overrides
        cfg = config or AdaptConfig()
        if overrides:
            cfg = configtools.from_mapping(AdaptConfig, {**asdict(cfg), **overrides})
        source = cfg.source or cfg.data
        return replace(cfg, source=source, data=source), {}

    def check(self, cfg: AdaptConfig) -> None:
        from foveal.models import MODELS

        if not cfg.target:
            raise ConfigError("foveal adapt train needs --target", hint="pass --target with the target images "
                              "(a class folder, or a folder of unlabelled images)")
        MODELS.get(cfg.model)  # an unknown name says so, with suggestions

    def input_shape(self, cfg: AdaptConfig, channels: int | None = None) -> tuple[int, int, int]:
        from foveal.transfer.pretrained import default_input_shape

        default = default_input_shape(cfg.model)
        h, w = cfg.image_hw or default[:2]
        return int(h), int(w), int(channels or default[2])

    def load_data(self, cfg: AdaptConfig) -> RunData:
        from foveal.adaptation.data import load_domains

        h, w, c = self.input_shape(cfg)
        domains = load_domains(cfg, (h, w), c)
        return RunData(domains.source_train, domains.source_val, domains.target_test, domains.class_names,
                       extra={"domains": domains, "input_shape": (h, w, domains.channels)})

    def steps_per_epoch(self, cfg: AdaptConfig, data: RunData) -> int:
        domains: Domains = data.extra["domains"]
        labelled = len(domains.source_train) + (len(domains.few) if domains.few is not None else 0)
        return max(1, math.ceil(labelled / cfg.batch_size))

    def fit_steps(self, cfg: AdaptConfig, data: RunData) -> int | None:
        return self.steps_per_epoch(cfg, data)  # the paired stream repeats

    def build(self, cfg: AdaptConfig, data: RunData, run_dir: Path) -> keras.Model:
        return build_adapt_model(cfg, data, cfg.method, self.steps_per_epoch(cfg, data) * cfg.epochs)

    def restore(self, cfg: AdaptConfig, data: RunData, model: keras.Model, card: ModelCard) -> None:
        data.extra["input_shape"] = tuple(card.input_shape)
        model.total_steps = self.steps_per_epoch(cfg, data) * cfg.epochs  # a resume may extend --epochs

    def compile(self, cfg: AdaptConfig, model: keras.Model, data: RunData, steps_per_epoch: int) -> None:
        compile_adapt_model(cfg, model, steps_per_epoch)

    def card(self, cfg: AdaptConfig, data: RunData, model: keras.Model, run_dir: Path) -> ModelCard:
        from foveal.models import ModelCard
        from foveal.models.io import preprocessing_of

        domains: Domains = data.extra["domains"]
        return ModelCard(architecture=cfg.model, class_names=list(data.class_names),
                         input_shape=data.extra["input_shape"], preprocessing=preprocessing_of(model),
                         task="adapt", training=_facts(cfg, domains, run_dir))

    def describe(self, cfg: AdaptConfig, data: RunData, model: keras.Model) -> list[str]:
        d: Domains = data.extra["domains"]
        parts = [f"source train {len(d.source_train)}"]
        parts += [f"source val {len(d.source_val)}"] if d.source_val is not None else []
        parts += [f"source test {len(d.source_test)}"] if d.source_test is not None else []
        parts += [f"target {len(d.target_train)}" + ("" if d.target_train.labelled else " (unlabelled)")]
        parts += [f"target test {len(d.target_test)}"] if d.target_test is not None else []
        parts += [f"labelled target {len(d.few)}"] if d.few is not None else []
        return [f"source: {cfg.source}; target: {cfg.target} ({len(data.class_names)} classes; {', '.join(parts)})",
                f"model: {cfg.model}, input {model.input_shape[1:]}, {model.count_params():,} parameters; "
                f"method {cfg.method}" + (", baseline source-only in the same run" if _wants_baseline(cfg) else "")]

    # ---------------------------------------------------------------------------- training
    def pipelines(self, cfg: AdaptConfig, data: RunData, *, seed: int,
                  start_epoch: int | None = None) -> tuple[Any, Any | None]:
        return adapt_pipelines(cfg, data.extra["domains"], seed=seed, with_target=cfg.method != "source-only",
                               start_epoch=start_epoch)

    def callbacks(self, cfg: AdaptConfig, model: keras.Model, card: ModelCard, data: RunData,
                  history: dict[str, list[float]]) -> list[Any]:
        return [epoch_scores(cfg, data.extra["domains"])]

    def monitor_without_validation(self, monitor: str) -> str:
        return monitor[4:] if monitor.startswith("val_") else monitor

    # ---------------------------------------------------------------------------- results
    def finish(self, cfg: AdaptConfig, model: keras.Model, card: ModelCard, data: RunData, run_dir: Path,
               history: dict[str, list[float]]) -> dict[str, Any] | None:
        from foveal.adaptation.statistics import batch_norm_layers, target_statistics
        from foveal.models import save_model

        domains: Domains = data.extra["domains"]
        classifier = model.classifier() if hasattr(model, "classifier") else model
        facts: dict[str, Any] = {"adapted": cfg.method}
        extra: dict[str, Any] = {}
        if cfg.target_statistics and batch_norm_layers(classifier):
            t_test = domains.target_test
            if t_test is not None and t_test.labelled:
                extra["target_accuracy_training_statistics"] = accuracy(classifier, t_test)
            used = sample(domains.target_train, 10_000, cfg.seed)
            layers = target_statistics(classifier, used.images.astype(np.float32))
            facts["target_statistics"] = f"{layers} batch-norm layer(s) from {len(used)} target images (AdaBN)"
            say(f"batch-norm statistics of {layers} layer(s) re-estimated on {len(used)} target images (AdaBN)")
        classifier_card = replace(card, task="classify", training={**card.training, **facts})
        save_model(classifier, run_dir / CLASSIFIER, classifier_card, include_optimizer=False)
        say(f"adapted classifier: {run_dir / CLASSIFIER} (a plain classifier: foveal predict/export/serve take it)")
        baseline, base_history = None, None
        if _wants_baseline(cfg):
            baseline, base_history = self.baseline(cfg, data, run_dir, classifier_card)
        return write_results(cfg, classifier, classifier_card, domains, run_dir, history, baseline, base_history,
                             extra)

    def baseline(self, cfg: AdaptConfig, data: RunData, run_dir: Path,
                 card: ModelCard) -> tuple[keras.Model, dict[str, list[float]]]:
        """The source-only model with the same options (read back from the run folder if done)."""
        from foveal.engine.optim import build_before_fit
        from foveal.engine.run import verbosity
        from foveal.models import load_model, save_model
        from foveal.training.runs import set_determinism

        saved, saved_history = run_dir / BASELINE_MODEL, run_dir / BASELINE_HISTORY
        if saved.is_file() and saved_history.is_file():
            history = json.loads(saved_history.read_text(encoding="utf-8"))
            if len(history.get("loss", [])) == cfg.epochs:  # else --epochs changed on resume: train it again
                say(f"source-only baseline: read back from {saved}")
                return load_model(saved)[0], history
        say(f"source-only baseline: the same model and options without adaptation, {cfg.epochs} epoch(s)")
        set_determinism(cfg.seed, cfg.deterministic)
        steps = self.steps_per_epoch(cfg, data)
        model = build_adapt_model(cfg, data, "source-only", steps * cfg.epochs)
        compile_adapt_model(cfg, model, steps)
        train, val = adapt_pipelines(cfg, data.extra["domains"], seed=cfg.seed, with_target=False)
        build_before_fit(model, train.element_spec)  # one trace of the train step, not two
        started = time.perf_counter()
        fitted = model.fit(train, validation_data=val, epochs=cfg.epochs, steps_per_epoch=steps, shuffle=False,
                           callbacks=[epoch_scores(cfg, data.extra["domains"])], verbose=verbosity(cfg))
        history = {k: [float(v) for v in vals] for k, vals in fitted.history.items()}
        history["seconds"] = [round(time.perf_counter() - started, 1)]
        classifier = model.classifier()
        save_model(classifier, saved, replace(card, training={**card.training, "adapted": "source-only"}),
                   include_optimizer=False)
        atomic_write_text(saved_history, json.dumps(history, indent=1))
        return classifier, history


def _wants_baseline(cfg: AdaptConfig) -> bool:
    return cfg.baseline and cfg.method != "source-only"


def _facts(cfg: AdaptConfig, domains: Domains, run_dir: Path) -> dict[str, Any]:
    return {"source": cfg.source, "target": cfg.target, "method": cfg.method, "run": run_dir.name,
            "target_labels_per_class": cfg.target_labels, "adapt_weight": cfg.adapt_weight,
            "feature_layer": feature_layer_of(cfg),
            "data": cfg.source}


def build_adapt_model(cfg: AdaptConfig, data: RunData, method: str, total_steps: int) -> keras.Model:
    """The zoo classifier of ``cfg`` wrapped for ``method``."""
    from foveal.adaptation.model import adapt_model
    from foveal.models import build_model

    shape = data.extra["input_shape"]
    classifier = build_model(cfg.model, num_classes=len(data.class_names), input_shape=shape,
                             preprocessing=cfg.preprocessing, **dict(cfg.model_options))
    return adapt_model(classifier, method, total_steps=total_steps, adapt_weight=cfg.adapt_weight, gamma=cfg.gamma,
                       domain_units=cfg.domain_units, feature_layer=feature_layer_of(cfg),
                       per_domain_batches=cfg.per_domain_batches)


def feature_layer_of(cfg: AdaptConfig) -> str | None:
    """``--feature-layer``, else the architecture's ``adapt_features`` (its registry entry), else None."""
    from foveal.models import MODELS

    return cfg.feature_layer or MODELS.get(cfg.model).meta.get("adapt_features")


def compile_adapt_model(cfg: AdaptConfig, model: keras.Model, steps_per_epoch: int) -> None:
    """Optimizer (the DANN annealing by default), cross-entropy and accuracy; the ramp's length."""
    import keras

    from foveal.engine.optim import optimizer_for
    from foveal.layers.reversal import DannAnnealing
    from foveal.training.schedules import make_optimizer

    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "dann":
        optimizer = make_optimizer(cfg.optimizer, DannAnnealing(cfg.learning_rate, total), momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay or None)
    else:
        optimizer = optimizer_for(cfg, model, steps_per_epoch)
    model.total_steps = total
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=False)


def adapt_pipelines(cfg: AdaptConfig, domains: Domains, *, seed: int, with_target: bool = True,
                    start_epoch: int | None = None) -> tuple[Any, Any]:
    """(training batches, source-validation batches or None).

    Training batches are ``({"image", "domain", "target"}, one-hot labels)``: ``batch_size``
    labelled images (source, plus the labelled target images with domain 1), each paired with
    as many target images; both streams are shuffled and repeat on their own. With
    ``start_epoch``, epochs ``start_epoch``, ... of :meth:`AdaptTask.steps_per_epoch` batches,
    each drawn from ``(seed, epoch)`` only (:mod:`foveal.data.epochs`: a resume replays them).
    """
    import tensorflow as tf

    from foveal.data.epochs import epoch_stream

    n_classes = len(domains.class_names)
    parts = [domains.source_train] + ([domains.few] if domains.few is not None else [])
    images = np.concatenate([p.images for p in parts])
    labels = np.concatenate([p.labels for p in parts]).astype(np.int32)
    domain = np.concatenate([np.full(len(p), p.domain, np.int32) for p in parts])
    batch = cfg.batch_size
    labelled_set = tf.data.Dataset.from_tensor_slices((images, labels, domain))
    target_set = tf.data.Dataset.from_tensor_slices(domains.target_train.images) if with_target else None
    steps = max(1, math.ceil(len(images) / batch))

    def one_epoch(s, epoch):
        labelled = (labelled_set.shuffle(len(images), seed=s, reshuffle_each_iteration=epoch is None).repeat()
                    .batch(batch, drop_remainder=len(images) >= batch))
        if target_set is None:
            paired = labelled.map(lambda x, y, d: ({"image": tf.cast(x, tf.float32), "domain": d},
                                                   tf.one_hot(y, n_classes)), num_parallel_calls=tf.data.AUTOTUNE)
        else:
            target = (target_set.shuffle(len(domains.target_train), seed=s + 1, reshuffle_each_iteration=epoch is None)
                      .repeat().batch(batch, drop_remainder=len(domains.target_train) >= batch))
            paired = tf.data.Dataset.zip((labelled, target)).map(
                lambda lab, t: ({"image": tf.cast(lab[0], tf.float32), "domain": lab[2],
                                 "target": tf.cast(t, tf.float32)}, tf.one_hot(lab[1], n_classes)),
                num_parallel_calls=tf.data.AUTOTUNE)
        return paired if epoch is None else paired.take(steps)

    paired = epoch_stream(one_epoch, seed=seed, start_epoch=start_epoch)
    val = None
    if domains.source_val is not None and len(domains.source_val):
        v = domains.source_val
        val = (tf.data.Dataset.from_tensor_slices((v.images, v.labels)).batch(256)
               .map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, n_classes))))
    return paired.prefetch(tf.data.AUTOTUNE), val


def sample(part: DomainImages, count: int, seed: int) -> DomainImages:
    """A seeded random ``count`` of ``part`` (test folders are sorted by class: never the first ones)."""
    if len(part) <= count:
        return part
    return part.take(np.sort(np.random.default_rng(seed).permutation(len(part))[:count]))


def accuracy(model: Any, part: DomainImages, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on a labelled part."""
    probs = model.predict(part.images.astype(np.float32), batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probs, axis=-1) == part.labels))


def epoch_scores(cfg: AdaptConfig, domains: Domains):
    """A callback adding ``source_accuracy`` and ``target_accuracy`` (on seeded samples of the test
    splits, when labelled) and ``progress`` (finished epochs / epochs) to each epoch's logs."""
    import keras

    parts = {}
    if domains.source_test is not None and domains.source_test.labelled:
        parts["source_accuracy"] = sample(domains.source_test, cfg.eval_images, cfg.seed)
    if domains.target_test is not None and domains.target_test.labelled:
        parts["target_accuracy"] = sample(domains.target_test, cfg.eval_images, cfg.seed)

    class EpochScores(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            for key, part in parts.items():
                logs[key] = accuracy(self.model, part)
            logs["progress"] = (epoch + 1) / cfg.epochs

    return EpochScores()


def features_of(model: Any, part: DomainImages, layer: str | None = None, batch_size: int = 256) -> np.ndarray:
    """The feature vectors (``layer``'s output, default the input of the last dense layer) of
    ``model`` for ``part``."""
    import keras

    from foveal.adaptation.model import feature_tensor

    extractor = keras.Model(model.input, feature_tensor(model, layer))
    images = part.images.astype(np.float32)  # eager batches: no predict function traced per model
    return np.concatenate([np.asarray(extractor(images[i:i + batch_size], training=False))
                           for i in range(0, len(images), batch_size)])


def write_results(cfg: AdaptConfig, classifier: keras.Model, card: ModelCard, domains: Domains, run_dir: Path,
                  history: dict[str, list[float]], baseline: keras.Model | None,
                  base_history: dict[str, list[float]] | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score both models on the whole test splits; write ``metrics.json`` and ``report.html``
    (``extra``: more metrics, e.g. the target accuracy before AdaBN)."""
    from markupsafe import Markup

    from foveal.adaptation.data import to_labeled
    from foveal.adaptation.report import comparison_table, feature_picture, plot_side_by_side
    from foveal.evaluation.run import score
    from foveal.visualize.report import png_data_uri, write_classification_report

    metrics: dict[str, Any] = {"method": cfg.method, "source_data": cfg.source, "target_data": cfg.target,
                               **(extra or {})}
    t_test, s_test = domains.target_test, domains.source_test
    scored = None
    rows: list[tuple[str, Any, Any]] = []
    if t_test is not None and t_test.labelled:
        scored = score(classifier, card, to_labeled(t_test, domains.class_names), batch_size=256)
        metrics["target_metrics"] = scored.metrics
        metrics["target_accuracy"] = scored.metrics["accuracy"]
        say(f"target test accuracy ({cfg.method}): {metrics['target_accuracy']:.4f} on {len(t_test)} images")
        if baseline is not None:
            metrics["source_only_target_accuracy"] = accuracy(baseline, t_test)
            metrics["gain"] = metrics["target_accuracy"] - metrics["source_only_target_accuracy"]
            say(f"target test accuracy (source-only): {metrics['source_only_target_accuracy']:.4f}; "
                f"gain {100 * metrics['gain']:+.1f} points")
        rows.append(("target test accuracy", metrics["target_accuracy"], metrics.get("source_only_target_accuracy")))
        if "target_accuracy_training_statistics" in metrics:
            rows.append(("target test accuracy, before AdaBN (training batch-norm statistics)",
                         metrics["target_accuracy_training_statistics"], None))
    if s_test is not None and s_test.labelled:
        metrics["source_accuracy"] = accuracy(classifier, s_test)
        if baseline is not None:
            metrics["source_only_source_accuracy"] = accuracy(baseline, s_test)
        rows.append(("source test accuracy", metrics["source_accuracy"], metrics.get("source_only_source_accuracy")))
    metrics["epochs"] = len(history.get("loss", []))
    metrics["train_seconds"] = round(sum(history.get("epoch_seconds", [])), 1)
    if base_history is not None:
        metrics["source_only_seconds"] = sum(base_history.get("seconds", [])) or None
    write_metrics(run_dir, metrics)

    sections: list[tuple[str, Any]] = []
    curves = {cfg.method: history} | ({"source-only": base_history} if base_history is not None else {})
    sections.append(("Adapted and source-only, epoch by epoch",
                     Markup(comparison_table(rows) if rows else "") +
                     Markup(f'<figure><img alt="accuracy per epoch" src="{png_data_uri(plot_side_by_side(curves))}">'
                            "<figcaption>solid: the adapted model; dashed: the source-only model trained in the same "
                            "run with the same options. Per-epoch scores use up to "
                            f"{cfg.eval_images} test images of each domain; the table, all of them"
                            f"{' (the curves with the batch-norm statistics of training, the table after AdaBN)' if 'target_statistics' in card.training else ''}"
                            ".</figcaption>"
                            "</figure>")))
    s_part = s_test if s_test is not None else domains.source_val
    t_part = t_test if t_test is not None else domains.target_train  # an unlabelled target: its images
    if cfg.feature_plot != "none" and s_part is not None:
        s, t = sample(s_part, 500, cfg.seed), sample(t_part, 500, cfg.seed)
        panels, layer = {}, feature_layer_of(cfg)
        if baseline is not None:
            panels["before: source-only"] = (features_of(baseline, s, layer), features_of(baseline, t, layer))
        panels[f"after: {cfg.method}"] = (features_of(classifier, s, layer), features_of(classifier, t, layer))
        png = feature_picture(panels, cfg.feature_plot, cfg.seed)
        sections.append(("Source and target features",
                         Markup(f'<figure><img alt="features" src="{png_data_uri(png)}"><figcaption>'
                                f"{cfg.feature_plot.upper()} of the adapted feature vectors (layer "
                                f"{layer or 'before the last dense one'}) of {len(s)} source and {len(t)} target "
                                "test images; adapted features "
                                "mix the two colours.</figcaption></figure>")))
    summary: dict[str, Any] = {"run": run_dir.name, "task": "domain adaptation", "method": cfg.method,
                               "model": cfg.model, "source": cfg.source, "target": cfg.target,
                               "classes": len(card.class_names), "input": "x".join(map(str, card.input_shape)),
                               "epochs": metrics["epochs"], "training time (s)": metrics["train_seconds"]}
    for key in ("target_accuracy", "target_accuracy_training_statistics", "source_only_target_accuracy", "gain",
                "source_accuracy"):
        if key in metrics:
            summary[key.replace("_", " ")] = round(float(metrics[key]), 4)
    misclassified = None
    if scored is not None and scored.misclassified_titles:
        misclassified = (scored.misclassified_images, scored.misclassified_titles)
    path = write_classification_report(
        run_dir / "report.html", title=f"foveal adaptation run {run_dir.name}", summary=summary, config=asdict(cfg),
        history={k: v for k, v in history.items() if k != "phase"}, metrics=scored.metrics if scored else None,
        misclassified=misclassified, extra_sections=sections)
    say(f"report: {path}")
    return metrics


__all__ = ["AdaptTask", "adapt_pipelines", "build_adapt_model", "compile_adapt_model", "epoch_scores"]
