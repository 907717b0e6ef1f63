"""``foveal detect train --adapt-target`` in a run (issue #16): its options, the detect task's
adaptation hooks and the report's adaptation section; the adapter itself is :mod:`.adapt`.

Example:
    >>> cfg = DetectConfig(data="synth.json", adapt_target="photos/", adapt_method="adabn")  # doctest: +SKIP
    >>> adaptation_facts(cfg)["method"]  # doctest: +SKIP
    'adabn'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from foveal.configtools import option
from foveal.errors import ConfigError
from foveal.training.runs import say

if TYPE_CHECKING:
    import keras

    from foveal.engine.plugin import RunData
    from foveal.models import ModelCard

TARGET_MAP = "target_map50"  # the history column of the adaptation target's test mAP@0.5
#: the per-epoch columns of the adaptation table: history key -> heading
ADAPTATION_COLUMNS = {"adapt_loss": "domain loss", "adapt_weight": "weight (ramp)",
                      "domain_accuracy": "domain classifier accuracy", "loss": "training loss",
                      "val_map50": "source validation mAP@0.5", TARGET_MAP: "target test mAP@0.5"}
#: ``foveal detect train --help``'s examples of adaptation
ADAPT_EXAMPLES = """\
  # composites only, adapted to the unlabelled real photos (CORAL, or DANN's gradient-reversal domain head)
  foveal detect train --data raccoon-synth/annotations/instances_train.json \\
      --adapt-target ../shared/datasets/raccoon --adapt-method dann --adapt-weight 0.1
  foveal detect train --data synth.json --adapt-target real_photos/ --adapt-method coral --adapt-features pooled
  # no domain loss: the batch-norm statistics re-estimated on the real photos at the end (AdaBN), the report's
  # feature picture beside a source-only detector's
  foveal detect train --data synth.json --adapt-target real_photos/ --adapt-method adabn \\
      --adapt-baseline runs/source-only/best.keras
"""


@dataclass(kw_only=True)
class AdaptOptions:
    """The ``adaptation`` options of :class:`~foveal.detection.config.DetectConfig`."""

    adapt_target: str | None = option(None, "adapt the detector to these unlabelled target images: a folder of "
                                      "images, or a box dataset whose train split is read without its boxes (its "
                                      "test split, if any, is scored as target_map50 for the report only)",
                                      group="adaptation")
    adapt_method: Literal["coral", "dann", "adabn"] = option(
        "coral", "with --adapt-target: coral (Deep CORAL between the backbone map's source and target "
        "covariances), dann (a domain classifier behind gradient reversal on the backbone map, Chen et al. "
        "2018's image-level adaptation) or adabn (no domain loss: the batch-norm statistics re-estimated on the "
        "target images after training, Li et al. 2017)", group="adaptation")
    target_statistics: bool = option(False, "with --adapt-method coral or dann: also re-estimate the batch-norm "
                                      "statistics on the target images after training (AdaBN; adabn always does); "
                                      "best.keras keeps them, the report gives the target mAP before and after",
                                      group="adaptation")
    feature_plot: Literal["pca", "tsne", "none"] = option(
        "pca", "with --adapt-target: the report's picture of the source and target images' pooled backbone "
        "features (before and after AdaBN, or beside --adapt-baseline's)", group="adaptation")
    adapt_baseline: str | None = option(None, "with --adapt-target: a source-only detector (.keras) whose features "
                                        "the report's picture shows beside the adapted ones (\"before\")",
                                        group="adaptation")
    adapt_weight: float | None = option(None, "the adaptation weight, reached by the DANN paper's ramp "
                                        "2/(1+exp(-10p))-1 (default: 1 for coral, 0.1 for dann)", group="adaptation")
    adapt_features: Literal["positions", "pooled"] = option(
        "positions", "the backbone map's samples: every position of every image (positions) or one mean vector "
        "per image (pooled)", group="adaptation")
    adapt_normalize: bool = option(False, "coral: divide the CORAL distance by the fourth power of the features' "
                                   "scale (their mean variance, both domains), so --adapt-weight does not depend on "
                                   "the backbone's activation scale", group="adaptation")
    adapt_units: list[int] = option([256], "dann: hidden ReLU layers of the domain classifier", group="adaptation")

    def adaptation_checks(self) -> list[tuple[bool, str]]:
        """``validate``'s checks of these options (with the detector's, ``require_all`` pairs)."""
        return [
            (not self.adapt_target or self.distribute == "none", "adapt_target is not supported with --distribute"),
            (not self.adapt_target or self.adapt_method == "adabn" or self.detector == "yolo"
             or self.rcnn_training == "joint",
             "adapt_target needs --rcnn-training joint (alternating training freezes the backbone it adapts)"),
            (self.adapt_weight is None or self.adapt_weight >= 0, "adapt_weight must not be negative"),
            (bool(self.adapt_target) or not (self.target_statistics or self.adapt_baseline),
             "target_statistics and adapt_baseline need --adapt-target (the target images)"),
            (len(self.adapt_units) >= 1 and all(u >= 1 for u in self.adapt_units),
             "adapt_units must be one or more positive layer sizes"),
            (not (self.fpn and self.adapt_target), "--adapt-target adapts one backbone map; leave out --fpn with it"),
        ]


def not_a_baseline(path: str, what: str) -> Exception:
    """The one-line refusal of an ``--adapt-baseline`` that is not a foveal detector."""
    return ConfigError(f"{path}: --adapt-baseline must be a detector of foveal detect train (its backbone map "
                       f"is pictured); this is {what}")


def adaptation_facts(cfg: Any) -> dict[str, Any]:
    """What ``--adapt-target`` did, for the card, the report and ``metrics.json``."""
    from foveal.detection.adapt import DEFAULT_WEIGHTS, uses_adabn

    adabn = {"batch_norm": "statistics re-estimated on the target images after training (AdaBN)"} if uses_adabn(
        cfg) else {}
    if cfg.adapt_method == "adabn":
        return {"target": cfg.adapt_target, "method": "adabn", **adabn}
    return {"target": cfg.adapt_target, "method": cfg.adapt_method,
            "weight": cfg.adapt_weight if cfg.adapt_weight is not None else DEFAULT_WEIGHTS[cfg.adapt_method],
            "features": cfg.adapt_features, "schedule": "weight * (2 / (1 + exp(-10 p)) - 1)",
            **({"normalize": True} if cfg.adapt_method == "coral" and cfg.adapt_normalize else {}),
            **({"domain_units": list(cfg.adapt_units)} if cfg.adapt_method == "dann" else {}), **adabn}


def adaptation_record(cfg: Any) -> dict[str, Any]:
    """The model card's record of ``--adapt-target`` (empty without it)."""
    return {"adaptation": adaptation_facts(cfg)} if getattr(cfg, "adapt_target", None) else {}


class DetectAdaptation:
    """The detect task plugin's ``--adapt-target`` hooks; each does nothing without it."""

    def check_adaptation(self, cfg: Any) -> None:
        """Refuse a wrong ``--adapt-baseline`` now (it is read at the end of the run, after training)."""
        if not cfg.adapt_baseline:
            return
        from foveal.models.io import read_card

        if not Path(cfg.adapt_baseline).is_file():
            raise not_a_baseline(cfg.adapt_baseline, "no such file")
        card = read_card(cfg.adapt_baseline)
        if card is None or card.task != "detect":
            raise not_a_baseline(cfg.adapt_baseline, f"a {card.task if card else 'foreign'} model")

    def load_target(self, cfg: Any, data: RunData) -> None:
        """The target images (``data.extra["adapt_target"]``) and its labelled test split, if any."""
        if not cfg.adapt_target:
            return
        from foveal.detection.adapt import load_target
        from foveal.evaluation.classes import align_boxes

        images, test = load_target(cfg.adapt_target, seed=cfg.seed, skip_invalid=cfg.skip_invalid,
                                   tolerance=cfg.clip_tolerance)
        data.extra["adapt_target"] = images
        if test is not None:
            data.extra["adapt_target_test"] = align_boxes(test, data.class_names, None)
        say(f"adaptation target: {cfg.adapt_target} ({len(images)} images, their boxes unused"
            + (f"; {len(test)} labelled test images scored as target_map50, never to pick best.keras)"
               if test is not None else ")"))

    def target_images(self, cfg: Any, data: RunData) -> Any:
        """The images the training pipeline pairs with each source batch (None without an adapter)."""
        from foveal.detection.adapt import uses_adapter

        return data.extra.get("adapt_target") if uses_adapter(cfg) else None

    def adapted(self, cfg: Any, data: RunData, model: keras.Model) -> keras.Model:
        """``model`` with the ``--adapt-target`` adapter (unchanged without it, and with adabn)."""
        from foveal.detection.adapt import uses_adapter

        if cfg.adapt_target and cfg.adapt_method == "adabn":
            say("adaptation: AdaBN, the batch-norm statistics re-estimated on the target images after training")
        if uses_adapter(cfg):
            adapter = model.enable_adaptation(cfg.adapt_method, weight=cfg.adapt_weight, features=cfg.adapt_features,
                                              units=cfg.adapt_units, normalize=cfg.adapt_normalize,
                                              total_steps=self.steps_per_epoch(cfg, data) * cfg.epochs)
            say(f"adaptation: {adapter.describe()}, over {adapter.total_steps} steps")
        return model

    def restore_adapter(self, cfg: Any, data: RunData, model: keras.Model) -> None:
        """A resumed run keeps its adapter (or its absence); its ramp follows a changed ``--epochs``."""
        from foveal.detection.adapt import uses_adapter

        adapter = getattr(model, "adapter", None)
        if uses_adapter(cfg) != (adapter is not None):
            raise ConfigError("--adapt-target cannot be added to or removed from a run when it resumes",
                              hint="resume with the run's own options, or start a new run")
        if adapter is not None:
            adapter.total_steps = self.steps_per_epoch(cfg, data) * cfg.epochs  # a resume may extend --epochs

    def adaptation_lines(self, cfg: Any, data: RunData, model: keras.Model) -> list[str]:
        """``describe``'s lines of the adaptation."""
        lines = []
        if getattr(model, "adapter", None) is not None:
            lines.append(f"adapted to {cfg.adapt_target} ({len(data.extra['adapt_target'])} images): "
                         f"{model.adapter.describe()}")
        if cfg.adapt_target and (cfg.adapt_method == "adabn" or cfg.target_statistics):
            from foveal.detection.adapt import ADABN_IMAGES

            lines.append(f"after training: batch-norm statistics re-estimated on up to {ADABN_IMAGES} of the "
                         f"{len(data.extra['adapt_target'])} target images (AdaBN)")
        return lines

    def target_callbacks(self, cfg: Any, model: keras.Model, card: ModelCard, data: RunData,
                         history: dict[str, list[float]]) -> list[Any]:
        """The target's test mAP@0.5 per epoch (reported only: the checkpoint never reads it)."""
        from foveal.detection.task import validation_map

        if "adapt_target_test" not in data.extra:
            return []
        return [validation_map(model, data.extra["adapt_target_test"], card, cfg,
                               (history.get(TARGET_MAP) or [None])[-1], key=TARGET_MAP)]

    def adapt_at_end(self, cfg: Any, model: keras.Model, card: ModelCard, data: RunData,
                     run_dir: Path, part: Any) -> dict[str, Any]:
        """AdaBN when asked (``best.keras`` saved again with the target's batch-norm statistics; the
        target's test mAP before it kept), and the picture of source and target features: the
        ``--adapt-baseline`` detector's, the trained weights' before AdaBN, and the final ones."""
        if not cfg.adapt_target:
            return {}
        from foveal.detection import adapt
        from foveal.models import load_model, save_model
        from foveal.training.precision import float32_for_saving
        from foveal.visualize.features import feature_picture

        found: dict[str, Any] = {}
        picture = cfg.feature_plot != "none"
        adabn = adapt.uses_adabn(cfg)
        baseline = None
        if cfg.adapt_baseline:  # the source-only detector, scored on the same target test images
            baseline, baseline_card = load_model(cfg.adapt_baseline)
            scored = self.score_target(cfg, baseline, baseline_card, data, what="--adapt-baseline")
            if scored is not None:
                found["target_baseline"] = scored | {"model": cfg.adapt_baseline}
        if not (picture or adabn):
            return found
        target = adapt.model_inputs(data.extra["adapt_target"], card, seed=cfg.seed, batch_size=cfg.batch_size,
                                    limit=adapt.ADABN_IMAGES if adabn else adapt.PICTURE_IMAGES)
        shown = part if part is not None and len(part) else (data.val if data.val is not None and len(data.val)
                                                             else data.train)
        source = (adapt.model_inputs(shown, card, limit=adapt.PICTURE_IMAGES, seed=cfg.seed, batch_size=cfg.batch_size)
                  if picture else None)
        panels: dict[str, Any] = {}

        def show(title: str, detector: keras.Model) -> None:
            panels.update(adapt.feature_panels({title: detector}, source, target[:adapt.PICTURE_IMAGES]))

        if picture and baseline is not None:
            if not hasattr(baseline, "feature_map"):
                raise not_a_baseline(cfg.adapt_baseline, "a detector without a recorded backbone map")
            show("before: --adapt-baseline (source-only)", baseline)
        if adabn:
            if picture:
                show("before AdaBN (training statistics)", model)
            before = self.score_target(cfg, model, card, data)
            if before is not None:
                found["target_before_adabn"] = before
            layers = adapt.adapt_batch_norm(model, target, batch_size=cfg.batch_size)
            found |= {"batch_norm_layers": layers, "batch_norm_images": len(target)}
            say(f"AdaBN: batch-norm statistics of {layers} layer(s) re-estimated on {len(target)} target images")
            training = {**card.training, "adaptation": {**card.training.get("adaptation", {}),
                                                        "batch_norm_layers": layers, "batch_norm_images": len(target)}}
            save_model(float32_for_saving(model), run_dir / "best.keras", replace(card, training=training))
            say(f"best.keras saved with the target's batch-norm statistics: {run_dir / 'best.keras'}")
        if picture:
            show(f"after: {cfg.adapt_method}" + (" + AdaBN" if adabn and cfg.adapt_method != "adabn" else ""), model)
            found["picture"] = feature_picture(panels, cfg.feature_plot, cfg.seed)
            found["picture_images"] = [len(source), min(len(target), adapt.PICTURE_IMAGES)]
        return found

    def score_target(self, cfg: Any, model: keras.Model, card: ModelCard,
                     data: RunData, what: str = "adaptation") -> dict[str, Any] | None:
        """``model`` (the best weights, or the ``--adapt-baseline`` detector) on the adaptation
        target's labelled test images (None without them)."""
        from foveal.detection.scoring import detect_dataset, score_detections

        part = data.extra.get("adapt_target_test")
        if part is None:
            return None
        dets = detect_dataset(model, card, part, batch_size=cfg.batch_size)
        scores = score_detections(part, dets, score_threshold=cfg.score_threshold)[0]
        target = {"data": cfg.adapt_target, "split": "test", "map50": scores["map50"],
                  "map50_voc07": scores["map50_voc07"], "coco_ap": scores["coco"]["AP"],
                  "coco_ap50": scores["coco"]["AP50"], "precision": scores["precision"], "recall": scores["recall"],
                  "num_images": scores["num_images"], "num_boxes": scores["num_boxes"]}
        say(f"{what} target {cfg.adapt_target} (test, {target['num_images']} images): mAP@0.5 "
            f"{target['map50']:.4f}, COCO AP {target['coco_ap']:.4f}; precision {target['precision']:.3f} recall "
            f"{target['recall']:.3f} at score {cfg.score_threshold}")
        return target

    def target_results(self, cfg: Any, model: keras.Model, card: ModelCard, data: RunData,
                       metrics: dict[str, Any] | None, adapted: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """The final weights' target test scores (None without them), and ``metrics`` with them and
        the adaptation's facts added."""
        target = self.score_target(cfg, model, card, data)
        if target is not None or "batch_norm_layers" in adapted:
            metrics = {**(metrics or {}), **({"target": target} if target is not None else {}),
                       "adaptation": adaptation_facts(cfg) | {k: v for k, v in adapted.items() if k != "picture"}}
        return target, metrics

    def adaptation_summary(self, cfg: Any, target: dict[str, Any] | None, adapted: dict[str, Any]) -> dict[str, Any]:
        """The report summary's rows of the adaptation and its target scores."""
        summary: dict[str, Any] = {}
        if cfg.adapt_target:
            summary["adapted to"] = cfg.adapt_target + (" (AdaBN after training)" if cfg.adapt_method == "adabn" else
                                                        f" ({cfg.adapt_method}, {cfg.adapt_features}, weight "
                                                        f"{adaptation_facts(cfg)['weight']:g})")
        if target is not None:
            summary[f"target {target['split']} mAP@0.5 (VOC all-point)"] = target["map50"]
            summary["target COCO AP@[.50:.95]"] = target["coco_ap"]
            if "target_before_adabn" in adapted:
                summary["target mAP@0.5 before AdaBN"] = adapted["target_before_adabn"]["map50"]
            if "target_baseline" in adapted:
                summary["target mAP@0.5 of --adapt-baseline (source-only)"] = adapted["target_baseline"]["map50"]
                summary["gain over source-only (target mAP@0.5)"] = (
                    f"{target['map50'] - adapted['target_baseline']['map50']:+.4f}")
        return summary

    def adaptation_sections(self, cfg: Any, history: dict[str, list[float]], target: dict[str, Any] | None,
                            adapted: dict[str, Any]) -> list[tuple[str, Any]]:
        """The report's first sections: the adaptation table (with the target scores side by side)
        and the picture of source and target features."""
        from markupsafe import Markup

        from foveal.visualize.report import figure_section

        adapted = {**adapted, "target": target} if target is not None else adapted
        found: list[tuple[str, Any]] = []
        if cfg.adapt_target and history:
            found.append(("Domain adaptation", adaptation_table(adaptation_facts(cfg), history, adapted)))
        if adapted.get("picture") is not None:
            found.append(figure_section(
                "Source and target features", adapted["picture"],
                "source and target features (PCA or t-SNE of the pooled backbone map)",
                before=Markup("<p>{}</p>").format(
                    f"The backbone map the head reads, averaged over its positions, of {adapted['picture_images'][0]} "
                    f"source and {adapted['picture_images'][1]} target images, projected to 2-D (each panel on its "
                    "own); adapted features mix the two colours.")))
        return found


def adaptation_table(facts: dict[str, Any], history: dict[str, list[float]], adapted: dict[str, Any] | None = None):
    """The report's adaptation section: the settings, then one row per epoch of the domain loss,
    its weight, the domain classifier's accuracy (dann) and the source and target mAP@0.5; with
    AdaBN (``adapted``), the layers and images it used and the target mAP before it."""
    from markupsafe import Markup

    columns = [k for k in ADAPTATION_COLUMNS if history.get(k)]
    epochs = max((len(history[k]) for k in columns), default=0)
    head = "".join(Markup("<th>{}</th>").format(ADAPTATION_COLUMNS[k]) for k in columns)
    rows = "".join(Markup("<tr><td>{}</td>{}</tr>").format(
        e + 1, Markup("").join(Markup("<td>{}</td>").format(
            f"{history[k][e]:.4g}" if e < len(history[k]) else "") for k in columns)) for e in range(epochs))
    settings = ", ".join(f"{k} {v}" for k, v in facts.items())
    adapted = adapted or {}
    if "batch_norm_layers" in adapted:
        settings += (f". AdaBN: {adapted['batch_norm_layers']} batch-norm layer(s) re-estimated on "
                     f"{adapted['batch_norm_images']} target images after training")
        if "target_before_adabn" in adapted:
            settings += (f"; target test mAP@0.5 {adapted['target_before_adabn']['map50']:.4f} before it "
                         "(the per-epoch column below is before it too)")
    return Markup("{}<p>{}</p><p>The domain loss is measured on the training batches (source and target "
                  "images); the target mAP, when the target has labelled test images, is reported only and "
                  "never picks best.keras.</p><table><tr><th>epoch</th>{}</tr>{}</table>").format(
        target_comparison(adapted), settings, Markup(head), Markup(rows))


def target_comparison(adapted: dict[str, Any]):
    """The target test scores side by side: the ``--adapt-baseline`` (source-only) detector's,
    the adapted weights' before AdaBN (when it ran) and the final ones, with the gain of each over
    source-only (empty without a labelled target test split)."""
    from markupsafe import Markup

    final = adapted.get("target")
    if not final:
        return Markup("")
    base = adapted.get("target_baseline")
    before = adapted.get("target_before_adabn")
    rows = [(f"source-only: --adapt-baseline {base.get('model', '')}", base)] if base else []
    if before:
        rows.append(("adapted, before AdaBN", before))
    rows.append(("adapted, after AdaBN (best.keras)" if before else "adapted (best.keras)", final))
    cells = "".join(Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
        name, f"{r['map50']:.4f}", f"{r['coco_ap']:.4f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}",
        f"{r['map50'] - base['map50']:+.4f}" if base and r is not base else "")
        for name, r in rows)
    note = ("" if base else " Pass --adapt-baseline (a source-only detector) to score it beside them.")
    return Markup("<p><b>Target test split ({} images, {} boxes)</b>: mAP@0.5 (VOC all-point), COCO AP, "
                  "precision and recall at the display threshold.{}</p><table><tr><th>detector</th><th>mAP@0.5</th>"
                  "<th>COCO AP</th><th>precision</th><th>recall</th><th>gain in mAP@0.5 over source-only</th></tr>"
                  "{}</table>").format(final["num_images"], final["num_boxes"], note, Markup(cells))
