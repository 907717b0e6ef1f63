"""Synthetic -> real raccoon detection: a detector trained only on composited cut-outs; prints JSON.

Issue #16's target: cut raccoons out of the raccoon *training* images with GrabCut initialised
by their boxes (``foveal datasets synth grabcut``), paste them onto the coco-mini photos
(``foveal datasets synth composite --masks``), train the raccoon detector of
recipes/raccoon-detection.md on those composites only, adapt it to the unlabelled real training
images, and score it on the real raccoon test split (40 images) against the same detector
trained on the real training images for the same budget, in the same invocation.

Steps (each timed; the load average is recorded before and after each training):

1. ``grabcut``: masks of the 173 training boxes (never the test split);
2. ``composite``: ``--count`` images of 1-2 raccoons on coco-mini photos (train2017 + val2017),
   256x256, with the composite command's noise, blur and colour jitter;
3. ``real``: the detector trained on the real training images (16 held out for validation);
4. ``synthetic``: the same detector, same budget, trained on the composites only (validation on
   held-out composites: no real label is seen);
5. ``synthetic+adabn``: the synthetic detector with its batch-norm statistics re-estimated on the
   160 real training images, without their labels (AdaBN, Li et al. 2017: the adaptation method
   that needs no training);
6. ``coral`` / ``dann`` (``--only coral dann``): the synthetic detector's run with
   ``--adapt-target`` the raccoon dataset (its 160 training images, without their boxes, are the
   target stream; its test split is scored per epoch as ``target_map50``, never picking
   ``best.keras``) and ``--adapt-method coral`` or ``dann``;
7. ``mixed`` (``--only real mixed``): the real run's detector and epochs trained on the real
   training images plus the composites (``--extra-data``, ``--extra-ratio``: the share of
   composites in an epoch), the texts' supervised case where labelled real images exist; scored
   beside ``real`` from the same invocation and seed.

``--seconds 0`` trains every detector for its full epochs (no budget), which makes the runs
repeatable for a seed whatever the load: ``--synthetic-epochs`` then sets the synthetic and
adapted runs' length.

Each detector is scored with ``foveal detect evaluate`` (mAP@0.5, VOC all-point; COCO AP).

    nice -n 5 .venv/bin/python benchmarks/synthetic_raccoon.py --data-root ../shared/datasets --seconds 480 --output /tmp/synth-raccoon > sr.json
    nice -n 5 .venv/bin/python benchmarks/synthetic_raccoon.py --data-root ../shared/datasets --seconds 0 --synthetic-epochs 8 \
        --only synthetic coral dann --output /tmp/synth-raccoon > adapted.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path()  # --data-root, set by main()
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

COMPOSITE: dict[str, Any] = {"size": (256, 256), "objects_per_image": (1, 2), "scale": (0.35, 0.9), "rotation": 10.0,
                             "min_visible": 0.5, "noise": 3.0, "blur": 1.0, "jitter": 0.2, "min_area": 400.0}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stop_after(epochs: int) -> Any:
    """A Keras callback that ends ``fit`` after ``epochs`` epochs of a longer schedule: the epochs a
    time-budgeted run finished, replayed whatever the load."""
    import keras

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= epochs:
                self.model.stop_training = True

    return StopAfter()


def train_and_score(name: str, data: str, seconds: float, epochs: int, eval_every: int, output: Path,
                    stop: int | None = None, **more: Any) -> dict[str, Any]:
    from raccoon_detection import DETECTOR, command_line

    from foveal.detection.config import DetectConfig
    from foveal.detection.train import evaluate_detector, train_detector

    options = DETECTOR | {"data": data, "time_budget": seconds, "epochs": epochs, "eval_every": eval_every,
                          "test_split": 0.0} | more
    cfg = DetectConfig(**options, output=str(output), name=name, progress=False)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = train_detector(cfg, callbacks=[stop_after(stop)] if stop else None)
        took = time.perf_counter() - started
        metrics = evaluate_detector(result.run_dir / "best.keras", str(DATASETS / "raccoon"), split="test")
    history = result.history
    val = history.get("val_map50", [])
    facts = (result.metrics or {}).get("adaptation", {})  # what the run's own end did (AdaBN, --adapt-baseline)
    ends = {f"{key}_map50": facts[key]["map50"] for key in ("target_before_adabn", "target_baseline") if key in facts}
    return {"command": command_line("foveal detect train", options).replace("'foveal detect train'", "foveal detect train"),
            **({"stopped_after_epochs": stop} if stop else {}),
            "epochs_run": len(history.get("loss", [])), "train_seconds": round(sum(history.get("epoch_seconds", [])), 1),
            "total_seconds": round(took, 1), "best_val_map50": round(max(val), 4) if val else None,
            "test_map50": metrics.get("map50"), "test_coco_ap": metrics.get("coco", {}).get("AP"),
            "test_precision": metrics.get("precision"), "test_recall": metrics.get("recall"),
            **ends, "run_dir": str(result.run_dir), "load_average_before": load_before, "load_average_after": os.getloadavg(),
            **{f"per_epoch_{key}": [round(float(v), 4) for v in history[key]]
               for key in ("val_map50", "target_map50", "adapt_loss", "adapt_weight", "domain_accuracy", "loss")
               if key in history}}


def adabn_and_score(model_path: Path, output: Path) -> dict[str, Any]:
    """Re-estimate the batch-norm statistics on the real training images (no labels), then score:
    what ``foveal detect train --adapt-method adabn`` does at the end of its run
    (:func:`foveal.detection.adapt.adapt_batch_norm` on :func:`~foveal.detection.adapt.model_inputs`)."""
    from foveal.data.boxes import load_boxes
    from foveal.detection.adapt import ADABN_IMAGES, adapt_batch_norm, model_inputs
    from foveal.detection.train import evaluate_detector
    from foveal.models import load_model
    from foveal.models.io import save_model

    model, card = load_model(model_path)
    started = time.perf_counter()
    images = model_inputs(load_boxes(str(DATASETS / "raccoon"))["train"], card, limit=ADABN_IMAGES)
    changed = adapt_batch_norm(model, images)
    adapted = output / "synthetic-adabn.keras"
    save_model(model, adapted, card)
    took = time.perf_counter() - started
    with contextlib.redirect_stdout(sys.stderr):
        metrics = evaluate_detector(adapted, str(DATASETS / "raccoon"), split="test")
    return {"batch_norm_layers_changed": changed, "target_images": len(images), "seconds": round(took, 1),
            "test_map50": metrics.get("map50"), "test_coco_ap": metrics.get("coco", {}).get("AP"),
            "test_precision": metrics.get("precision"), "test_recall": metrics.get("recall"), "model": str(adapted)}


def feature_picture_of(models: list[Path], composites: Path, output: Path) -> dict[str, Any]:
    """PCA of the pooled backbone map of each detector on 200 composites (source) and 200 real
    raccoon training images (target, their boxes unused): :func:`foveal.detection.adapt.feature_panels`."""
    import numpy as np

    from foveal.data.boxes import load_boxes
    from foveal.detection.adapt import PICTURE_IMAGES, feature_panels, model_inputs
    from foveal.models import load_model
    from foveal.utils_io import atomic_path
    from foveal.visualize.features import feature_picture

    loaded = {path: load_model(path) for path in models}
    card = next(iter(loaded.values()))[1]
    source = model_inputs(load_boxes(str(composites))["train"], card, limit=PICTURE_IMAGES)
    target = model_inputs(load_boxes(str(DATASETS / "raccoon"))["train"], card, limit=PICTURE_IMAGES)
    panels = feature_panels({f"{path.parent.name}/{path.name}": model for path, (model, _) in loaded.items()},
                            source, target)
    with atomic_path(output) as tmp:
        tmp.write_bytes(feature_picture(panels, "pca"))
    gaps = {title: round(float(np.linalg.norm(s.mean(0) - t.mean(0)) / np.sqrt((s.var(0).sum() + t.var(0).sum()) / 2)), 4)
            for title, (s, t) in panels.items()}
    return {"png": str(output), "source_images": len(source), "target_images": len(target),
            "mean_gap_over_spread": gaps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, required=True,
                        help="folder holding raccoon/ and coco-mini/, e.g. ../shared/datasets")
    parser.add_argument("--seconds", type=float, default=480.0, help="training budget per detector (default: 480)")
    parser.add_argument("--count", type=int, default=800, help="composited images (default: 800)")
    parser.add_argument("--output", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--only", nargs="+", choices=["real", "synthetic", "coral", "dann", "adabn", "mixed", "none"],
                        help="train these detectors only (default: real and synthetic); adabn: AdaBN on --baseline; "
                        "none: only --baseline and --picture")
    parser.add_argument("--synthetic-epochs", type=int, help="epochs of the synthetic and adapted runs' cosine "
                        "schedule (default: as many composites as the real run's images)")
    parser.add_argument("--stop-after", type=int, help="end the synthetic and adapted runs after this many epochs "
                        "of their schedule (e.g. the epochs a recorded budgeted run finished)")
    parser.add_argument("--baseline", type=Path, help="a saved detector (e.g. the recorded source-only run's "
                        "best.keras) scored on the real test split in the same invocation")
    parser.add_argument("--adapt-weight", type=float, help="--adapt-weight of the adapted runs (default: the "
                        "method's)")
    parser.add_argument("--adapt-features", choices=["positions", "pooled"], help="--adapt-features of the adapted "
                        "runs (default: the option's, positions)")
    parser.add_argument("--adapt-normalize", action="store_true", help="--adapt-normalize of the adapted runs "
                        "(coral: the distance divided by the features' scale^4)")
    parser.add_argument("--target-statistics", action="store_true", help="--target-statistics of the adapted runs "
                        "(AdaBN after training; their test scores are then after it, the JSON has both)")
    parser.add_argument("--adapt-baseline", type=Path, help="--adapt-baseline of the adapted runs: a source-only "
                        "detector scored on the target test split beside them in their report")
    parser.add_argument("--picture", type=Path, help="write a PNG of the pooled backbone features (PCA) of 200 "
                        "composites and 200 real training images for each --picture-models detector")
    parser.add_argument("--picture-models", type=Path, nargs="*", default=[], help="detectors (.keras) pictured, "
                        "e.g. the adapted runs' best.keras (saved by a foveal that records the backbone map)")
    parser.add_argument("--extra-ratio", type=float, default=0.5,
                        help="share of composites in an epoch of the mixed run (default: 0.5)")
    parser.add_argument("--seed", type=int, help="--seed of every training run (default: the option's, 42)")
    parser.add_argument("--real-epochs", type=int, help="epochs of the real run's cosine schedule (default: "
                        "about one per 4.5 s of budget)")
    args = parser.parse_args()
    global DATASETS
    DATASETS = args.data_root
    out = args.output or Path(tempfile.mkdtemp(prefix="foveal-synth-raccoon-"))
    out.mkdir(parents=True, exist_ok=True)
    from foveal.data.synth.composite import make_composites
    from foveal.data.synth.grabcut import grabcut_masks

    report: dict[str, Any] = {"benchmark": "synthetic_raccoon", "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "budget_seconds": args.seconds, "cores": os.cpu_count(), "output": str(out),
                              "load_average_start": os.getloadavg()}
    masks = out / "masks"
    if not (masks / "grabcut.json").is_file():
        started = time.perf_counter()
        manifest = grabcut_masks(str(DATASETS / "raccoon"), masks, split="train", overwrite=True)
        report["grabcut"] = {k: v for k, v in manifest.items() if k not in ("empty_boxes", "fallbacks")} | {
            "empty_boxes": len(manifest["empty_boxes"]), "seconds": round(time.perf_counter() - started, 1),
            "command": f"foveal datasets synth grabcut --data {DATASETS / 'raccoon'} --split train --output {masks}"}
    else:
        report["grabcut"] = json.loads((masks / "grabcut.json").read_text()) | {"reused": True}
        report["grabcut"]["empty_boxes"] = len(report["grabcut"]["empty_boxes"])
        report["grabcut"].pop("fallbacks", None)
    synth = out / "synth"
    if not (synth / "composite.json").is_file():
        started = time.perf_counter()
        manifest = make_composites(str(DATASETS / "raccoon" / "images"), str(DATASETS / "coco-mini"), synth,
                                   masks=masks, count=args.count, seed=0, overwrite=True, **COMPOSITE)
        report["composite"] = {k: manifest[k] for k in ("count", "instances", "cutouts", "photos")} | {
            "seconds": round(time.perf_counter() - started, 1),
            "command": shlex.join(["foveal", "datasets", "synth", "composite", "--objects",
                                   str(DATASETS / "raccoon" / "images"), "--masks", str(masks), "--backgrounds",
                                   str(DATASETS / "coco-mini"), "--count", str(args.count), "--size", "256",
                                   "--objects-per-image", "1", "2", "--scale", "0.35", "0.9", "--rotation", "10",
                                   "--min-visible", "0.5", "--noise", "3", "--output", str(synth)])}
    else:
        report["composite"] = json.loads((synth / "composite.json").read_text()) | {"reused": True}
    # the cosine schedule should end near the budget: about one real epoch (144 images) per 4.5 s on this
    # machine (recipes/raccoon-detection.md), so scale the synthetic epochs by the image counts
    real_epochs = args.real_epochs or max(10, int(args.seconds / 4.5))
    synth_epochs = args.synthetic_epochs or max(3, round(real_epochs * 144 / (0.9 * args.count)))
    only = args.only or ["real", "synthetic"]
    seeded = {} if args.seed is None else {"seed": args.seed}
    if "real" in only:
        log(f"real: {real_epochs} epochs, budget {args.seconds:.0f} s")
        report["real"] = train_and_score("real", str(DATASETS / "raccoon"), args.seconds, real_epochs, 5, out / "runs", **seeded)
    if "mixed" in only:
        log(f"mixed: {real_epochs} epochs, real images + composites (extra ratio {args.extra_ratio}), "
            f"budget {args.seconds:.0f} s")
        report["mixed"] = train_and_score("mixed", str(DATASETS / "raccoon"), args.seconds, real_epochs, 5, out / "runs",
                                          extra_data=str(synth / "annotations" / "instances_train.json"),
                                          extra_ratio=args.extra_ratio, **seeded)
    if "synthetic" in only:
        log(f"synthetic: {synth_epochs} epochs, budget {args.seconds:.0f} s")
        report["synthetic"] = train_and_score("synthetic", str(synth / "annotations" / "instances_train.json"),
                                              args.seconds, synth_epochs, max(1, synth_epochs // 8), out / "runs",
                                              stop=args.stop_after, **seeded)
        try:
            report["synthetic+adabn"] = adabn_and_score(Path(report["synthetic"]["run_dir"]) / "best.keras", out)
        except Exception as exc:  # report what failed rather than lose the other numbers
            report["synthetic+adabn"] = {"failed": f"{type(exc).__name__}: {exc}"}
    for method in ("coral", "dann"):
        if method in only:
            log(f"{method}: {synth_epochs} epochs, budget {args.seconds:.0f} s, adapted to the real training images")
            adapt = {"adapt_target": str(DATASETS / "raccoon"), "adapt_method": method}
            if args.adapt_weight is not None:
                adapt["adapt_weight"] = args.adapt_weight
            if args.adapt_features is not None:
                adapt["adapt_features"] = args.adapt_features
            if args.adapt_normalize:
                adapt["adapt_normalize"] = True
            if args.target_statistics:
                adapt["target_statistics"] = True
            if args.adapt_baseline is not None:
                adapt["adapt_baseline"] = str(args.adapt_baseline)
            report[method] = train_and_score(method, str(synth / "annotations" / "instances_train.json"),
                                             args.seconds, synth_epochs, max(1, synth_epochs // 8), out / "runs",
                                             stop=args.stop_after, **adapt, **seeded)
    if args.baseline is not None:
        from foveal.detection.train import evaluate_detector

        with contextlib.redirect_stdout(sys.stderr):
            metrics = evaluate_detector(args.baseline, str(DATASETS / "raccoon"), split="test")
        report["baseline"] = {"model": str(args.baseline), "test_map50": metrics.get("map50"),
                              "test_coco_ap": metrics.get("coco", {}).get("AP"),
                              "test_precision": metrics.get("precision"), "test_recall": metrics.get("recall")}
        if "adabn" in only:  # AdaBN (the library's, as --adapt-method adabn runs it) on the recorded detector
            report["baseline+adabn"] = adabn_and_score(args.baseline, out)
    if args.picture is not None:
        report["picture"] = feature_picture_of(list(args.picture_models), synth / "annotations" / "instances_train.json",
                                               args.picture)
    report["load_average_end"] = os.getloadavg()
    report["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
