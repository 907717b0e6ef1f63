"""``foveal inspect``: look inside a model file or a registered architecture.

Prints the layer table (output shape, parameters, FLOPs, receptive field), the totals and the
memory budget; with ``--output`` writes ``summary.json``, ``filters.png`` and ``inspect.html``,
and with ``--image`` also ``feature_maps.png`` and ``gradcam.png``. The lead wires it into
``foveal.cli.main`` with ``add_inspect_command(sub)``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from foveal.errors import FovealError, ModelError

EPILOG = """examples:
  foveal inspect resnet18                          # layer table, FLOPs, receptive fields, memory
  foveal inspect resnet18 --input-shape 64 64 3 --num-classes 10 --batch-size 128
  foveal inspect runs/NAME/best.keras --image cat.png --output inspect/   # + Grad-CAM, report
  foveal inspect runs/NAME/best.keras --image cat.png --class cat --layer stage4_unit2_out --output out/
  foveal inspect runs/GAN/best.keras        # a VAE, GAN or cGAN: each network (generator, discriminator)
  foveal enhance inspect runs/SR/best.keras --input-shape 64 64 3   # an enhancer at a 64x64 input
  foveal video inspect runs/FIGHT/best.keras   # the frame backbone and the sequence head, FLOPs per clip
"""


def add_inspect_command(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "inspect", help="layer table with FLOPs and receptive fields, memory budget, filters, Grad-CAM",
        description="Look inside a model: per-layer output shape, parameters, FLOPs and receptive "
        "field, the memory needed for inference and training, and with an image its feature maps "
        "and Grad-CAM heat map.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    p.add_argument("model", metavar="MODEL_OR_NAME",
                   help="a .keras model file written by foveal, or a registered architecture name "
                   "(see `foveal models`)")
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"),
                   help="input size to count at (default: the model's own; for a file it changes the "
                   "counts only, images keep the file's size)")
    p.add_argument("--num-classes", type=int, default=10,
                   help="output classes when building an architecture by name (default: 10)")
    p.add_argument("--image", metavar="IMG", help="an image file for feature maps and Grad-CAM")
    p.add_argument("--layer", metavar="NAME",
                   help="layer for the feature maps and Grad-CAM (default: the last feature map before "
                   "global pooling)")
    p.add_argument("--class", dest="class_", metavar="NAME_OR_INDEX",
                   help="class that Grad-CAM explains (default: the top prediction)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="batch size of the training memory estimate (default: 32)")
    p.add_argument("--output", metavar="DIR",
                   help="write summary.json, filters.png, inspect.html (and with --image "
                   "feature_maps.png, gradcam.png) here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.set_defaults(func=inspect_command)


def _resolve_model(spec: str, num_classes: int, input_shape: tuple[int, int, int] | None):
    """``(model, card, source)`` for a .keras path or a registered architecture name."""
    from foveal.models import MODELS, ModelCard, build_model, load_model

    path = Path(spec)
    if path.suffix == ".keras" or path.is_file():
        model, card = load_model(path)
        backbone = getattr(model, "backbone", None)
        if not hasattr(model, "inputs") and hasattr(backbone, "inputs"):
            # a two-stage detector (Faster R-CNN) is not one graph: its backbone is
            print(f"note: {path} is a {card.architecture}; inspecting its backbone {backbone.name!r} (the RPN and "
                  "the RoI head run on proposals and are not one graph)", file=sys.stderr)
            return backbone, card, "file"
        return model, card, "file"
    if spec in MODELS:
        model = build_model(spec, num_classes=num_classes, input_shape=input_shape)
        card = ModelCard(architecture=spec, class_names=[str(i) for i in range(num_classes)],
                         input_shape=tuple(int(d) for d in model.input_shape[1:]),  # type: ignore[arg-type]
                         preprocessing=MODELS.get(spec).meta.get("preprocessing", "rescale"))
        return model, card, "architecture"
    close = difflib.get_close_matches(spec.lower(), MODELS.names(), n=3, cutoff=0.5)
    raise ModelError(
        f"unknown model {spec!r}: no such .keras file and no registered architecture of that name",
        hint=f"did you mean {', '.join(close)}?" if close else f"architectures: {', '.join(MODELS.names())}",
    )


def _class_index(value: str | None, class_names: list[str]) -> int | None:
    if value is None:
        return None
    if value in class_names:
        return class_names.index(value)
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(class_names):
        return int(value)
    raise FovealError(f"unknown class {value!r}",
                      hint=f"give a class name or an index 0..{len(class_names) - 1}; names: "
                      f"{', '.join(class_names[:20])}{' ...' if len(class_names) > 20 else ''}")


def inspect_model(
    model: Any,
    *,
    name: str,
    source: str = "model",
    input_shape: tuple[int, int, int] | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """The JSON-ready inspection of ``model``: layers (with receptive fields), totals, memory.

    Example:
        >>> from foveal.models import build_model
        >>> report = inspect_model(build_model("lenet5"), name="lenet5")
        >>> report["totals"]["parameters"], report["layers"][5]["receptive_field"]
        (61706, [16, 16])
    """
    return _inspect(model, name, source, input_shape, batch_size)[0]


def _inspect(model, name, source, input_shape, batch_size) -> tuple[dict[str, Any], list, list]:
    """The report plus the summary and receptive-field rows it was made from."""
    from foveal.inspection import FLOPS_CONVENTION, memory_budget, receptive_fields, summarize, totals

    rows = summarize(model, input_shape)
    fields = receptive_fields(model, input_shape)
    layers = []
    for row, rf in zip(rows, fields):
        entry = row.to_dict()
        entry.update({k: v for k, v in rf.to_dict().items() if k != "layer"})
        layers.append(entry)
    shapes = [tuple(int(d) for d in t.shape[1:]) for t in model.inputs] if input_shape is None else [input_shape]
    report = {
        "model": name,
        "source": source,
        "input_shape": list(shapes[0]),
        "flops_convention": FLOPS_CONVENTION,
        "totals": totals(rows),
        "memory": {
            "inference": memory_budget(model, batch_size=1, input_shape=input_shape),
            "training": memory_budget(model, batch_size=batch_size, training=True, input_shape=input_shape),
        },
        "layers": layers,
    }
    if len(shapes) > 1:  # e.g. a conditional generator: noise and a class id
        report["inputs"] = {t.name: list(shape) for t, shape in zip(model.inputs, shapes)}
    return report, rows, fields


def model_parts(model: Any) -> dict[str, Any]:
    """The networks a model is made of, each one graph (a VAE's encoder and decoder, a GAN's generator and
    discriminator: ``model.inspection_parts()``), or ``{}`` for a model that is one graph itself."""
    parts = getattr(model, "inspection_parts", None)
    return dict(parts()) if callable(parts) else {}


def video_parts(path: str, head: Any, card: Any) -> dict[str, Any]:
    """The networks of a video model file (``foveal video train``): on the feature route the frozen
    per-frame backbone (``backbone.keras`` beside the file, or the zoo network the card names) and the
    sequence head; ``{}`` for an end-to-end model, which is one graph of whole clips."""
    from foveal.video.predict import load_video_model

    vm = load_video_model(path)
    return {} if vm.end_to_end else {"frame_backbone": vm.extractor.model, "sequence_head": vm.head}


def inspect_parts(model: Any, parts: dict[str, Any], *, name: str, source: str = "model",
                  batch_size: int = 32) -> tuple[dict[str, Any], dict[str, tuple[list, list]]]:
    """The report of a model of several networks (:func:`model_parts`): one :func:`inspect_model` report
    per part under ``parts``, the whole model's parameters, and the summed FLOPs of one forward pass of
    each part; plus each part's summary and receptive-field rows.

    Example:
        >>> from foveal.generative.models import build_generative
        >>> gan = build_generative("dcgan", image_shape=(28, 28, 1), latent_dim=8, width=8)
        >>> report, _ = inspect_parts(gan, model_parts(gan), name="dcgan")
        >>> sorted(report["parts"]), report["parameters"] == gan.count_params()
        (['discriminator', 'generator'], True)
    """
    reports, rows = {}, {}
    for part_name, part in parts.items():
        report, part_rows, fields = _inspect(part, f"{name}:{part_name}", source, None, batch_size)
        reports[part_name] = report
        rows[part_name] = (part_rows, fields)
    whole = {"model": name, "source": source, "parameters": int(model.count_params()),
             "flops_per_image_by_part": {k: r["totals"]["flops"] for k, r in reports.items()}, "parts": reports}
    return whole, rows


def inspect_command(args: argparse.Namespace, _overrides: dict[str, Any] | None = None) -> int:
    """Handler of ``foveal inspect`` (see :func:`add_inspect_command`); returns the exit status."""
    from foveal.inspection import format_memory, format_summary
    from foveal.visualize.filters import find_layer

    if args.batch_size < 1:
        raise FovealError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_classes < 2:
        raise FovealError(f"--num-classes must be at least 2, got {args.num_classes}")
    shape = tuple(args.input_shape) if args.input_shape else None
    model, card, source = _resolve_model(args.model, args.num_classes, shape)
    if source == "file" and card.task == "video" and shape is not None:
        raise FovealError(f"{args.model}: --input-shape does not apply to a video model (its frames are counted at "
                          f"the size it was trained on, {'x'.join(map(str, card.input_shape[:2]))})",
                          hint="leave out --input-shape")
    parts = video_parts(args.model, model, card) if source == "file" and card.task == "video" else model_parts(model)
    if parts:
        return _inspect_parts_command(args, model, card, parts)
    count_shape = shape if source == "file" else None  # a built architecture already has it
    if count_shape is None and source == "file" and None in model.input_shape[1:]:
        count_shape = tuple(card.input_shape)  # fully convolutional task models: count at the trained size
    if args.image and card.task != "classify":
        raise FovealError(f"{args.model} is a {card.task} model: Grad-CAM (--image) explains a classifier's class "
                          "score", hint="leave out --image for its layers, FLOPs, receptive fields, memory and filters")
    if args.layer:
        find_layer(model, args.layer)  # an unknown name fails before any work
    class_index = _class_index(args.class_, list(card.class_names))
    report, rows, fields = _inspect(model, args.model, source, count_shape, args.batch_size)
    report["architecture"] = card.architecture
    if source == "file" and card.task == "video":  # an end-to-end model: one input is a whole clip
        report["frames_per_clip"] = int(card.training["steps"])
        report["flops_per_clip"] = report["totals"]["flops"]

    image = cam = None
    if args.image:
        from foveal.data.files import load_image
        from foveal.visualize.gradcam import compute_gradcam

        image = load_image(Path(args.image), card)
        cam = compute_gradcam(model, image, class_index, args.layer)
        report["gradcam"] = {
            "image": str(args.image),
            "layer": cam.layer_name,
            "class_index": cam.class_index,
            "class_name": card.class_names[cam.class_index] if cam.class_index < len(card.class_names) else None,
            "probability": round(float(cam.probabilities[cam.class_index]), 6),
        }

    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['model']} ({source}), input {'x'.join(map(str, report['input_shape']))}")
        print(format_summary(rows, fields))
        print(format_memory(report["memory"]["inference"], report["memory"]["training"]))
        if "flops_per_clip" in report:
            print(f"(a video model: one input is a clip of {report['frames_per_clip']} frames, so the FLOPs and "
                  "memory per image above are per clip)")
        if cam is not None:
            g = report["gradcam"]
            print(f"Grad-CAM: class {g['class_name']} (index {g['class_index']}, p={g['probability']:.3f}) "
                  f"at layer {g['layer']}")
    if args.output:
        written = _write_outputs(Path(args.output), model, card, report, rows, fields, image, cam, args.layer)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _inspect_parts_command(args: argparse.Namespace, model: Any, card: Any, parts: dict[str, Any]) -> int:
    """``foveal inspect`` of a model of several networks: each one's table, totals and memory."""
    from foveal.inspection import format_memory, format_summary

    if args.image:
        raise FovealError(f"{args.model} is a {card.task} model: Grad-CAM (--image) explains a classifier's "
                          "class score", hint="leave out --image for its layers, FLOPs, receptive fields and memory")
    if args.input_shape or args.layer:
        raise FovealError(f"{args.model}: --input-shape and --layer do not apply to a model of several networks "
                          f"({', '.join(parts)})", hint="leave them out: each network is counted at its own input")
    report, rows = inspect_parts(model, parts, name=args.model, source="file", batch_size=args.batch_size)
    report["architecture"], report["task"] = card.architecture, card.task
    if card.task == "video":  # the backbone runs on every sampled frame, the head once per clip
        report["parameters"] = sum(r["totals"]["parameters"] for r in report["parts"].values())
        steps = int(card.training["steps"])
        by_part = report["flops_per_image_by_part"]
        report["frames_per_clip"] = steps
        report["flops_per_clip"] = steps * by_part["frame_backbone"] + by_part["sequence_head"]
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{args.model}: {card.architecture} ({card.task}), {report['parameters']:,} parameters in "
              f"{len(parts)} networks: {', '.join(parts)}")
        for name, part in report["parts"].items():
            inputs = part.get("inputs") or {"input": part["input_shape"]}
            print(f"\n== {name}: input {', '.join(f'{k} {tuple(v)}' for k, v in inputs.items())}")
            print(format_summary(*rows[name]))
            print(format_memory(part["memory"]["inference"], part["memory"]["training"]))
        if "flops_per_clip" in report:
            from foveal.inspection.summary import human

            by_part = report["flops_per_image_by_part"]
            print(f"\nFLOPs per clip: {human(report['flops_per_clip'])} ({report['flops_per_clip']:,}) = "
                  f"{report['frames_per_clip']} frames x {human(by_part['frame_backbone'])} (frame backbone, frozen) + "
                  f"{human(by_part['sequence_head'])} (sequence head, once per clip)")
        if any(k in parts for k in ("generator", "decoder")):
            print("\n(receptive field 'whole' in a generator or decoder: every output pixel depends on the whole "
                  "latent code)")
    if args.output:
        for path in _write_parts_outputs(Path(args.output), model, report, rows):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _write_parts_outputs(out: Path, model, report, rows) -> list[Path]:
    from foveal.inspection.summary import human
    from foveal.utils_io import atomic_path, atomic_write_text
    from foveal.visualize.filters import plot_first_layer_filters
    from foveal.visualize.report import png_data_uri, write_classification_report

    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_text(out / "summary.json", json.dumps(report, indent=1) + "\n")]
    summary: dict[str, Any] = {"model": report["model"], "architecture": report.get("architecture", ""),
                               "parameters": f"{report['parameters']:,}"}
    sections: list[tuple[str, Any]] = []
    for name, part in report["parts"].items():
        t, inf, tr = part["totals"], part["memory"]["inference"], part["memory"]["training"]
        summary[f"{name}: parameters, FLOPs per image"] = f"{t['parameters']:,}, {human(t['flops'])}"
        summary[f"{name}: memory (inference batch 1 / training batch {tr['batch_size']})"] = (
            f"{inf['inference_mb']:,.2f} MB / {tr['training_mb']:,.2f} MB")
        sections.append((f"Layers of the {name}", _layer_table(*rows[name], part["flops_convention"])))
        if name in ("encoder", "discriminator"):  # the network that looks at images has image filters
            try:
                png = plot_first_layer_filters(model_parts(model)[name])
            except FovealError:
                continue
            with atomic_path(out / f"filters_{name}.png") as tmp:
                tmp.write_bytes(png)
            written.append(out / f"filters_{name}.png")
            sections.append((f"First-layer filters of the {name}",
                             _markup(f'<figure><img src="{png_data_uri(png)}" alt="filters"></figure>')))
    written.append(write_classification_report(out / "inspect.html", title=f"Inspection of {report['model']}",
                                               summary=summary, config={}, history=None, metrics=None,
                                               extra_sections=sections))
    return written


def _markup(html: str) -> Any:
    from markupsafe import Markup

    return Markup(html)


def _layer_table(rows, fields, convention: str) -> Any:
    """The HTML layer table (layer, class, output shape, parameters, FLOPs, receptive field, jump)."""
    from markupsafe import Markup, escape

    from foveal.inspection.summary import human

    head = "".join(f"<th>{h}</th>" for h in ("layer", "class", "output shape", "params", "FLOPs", "RF", "jump"))
    body = []
    for row, rf in zip(rows, fields):
        shape = row.output_shape
        rf_text = "whole input" if rf.receptive_field is None else "x".join(map(str, rf.receptive_field))
        jump = "" if rf.jump is None else "x".join(f"{j:g}" for j in rf.jump)
        cells = [Markup("&nbsp;" * 3 * row.depth) + escape(row.name), escape(row.class_name),
                 escape(str(shape)), f"{row.params:,}", human(row.flops) + ("" if row.flops_counted else "?"),
                 escape(rf_text), escape(jump)]
        body.append("<tr>" + "".join(
            f'<td class="num">{c}</td>' if i >= 3 else f"<td>{c}</td>" for i, c in enumerate(cells)) + "</tr>")
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
                  f"<p>{escape(convention)}</p>")


def _write_outputs(out: Path, model, card, report, rows, fields, image, cam, layer) -> list[Path]:
    from foveal.utils_io import atomic_path, atomic_write_text
    from foveal.visualize.filters import plot_feature_maps, plot_first_layer_filters
    from foveal.visualize.gradcam import plot_gradcam_result

    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_text(out / "summary.json", json.dumps(report, indent=1) + "\n")]
    pngs: dict[str, bytes] = {}
    try:
        pngs["filters.png"] = plot_first_layer_filters(model)
    except FovealError as exc:  # e.g. a model without convolutions
        print(f"note: no filters.png: {exc.message}", file=sys.stderr)
    if image is not None and cam is not None:
        pngs["feature_maps.png"] = plot_feature_maps(model, layer or cam.layer_name, image)
        pngs["gradcam.png"] = plot_gradcam_result(image, cam, card.class_names)
    for name, png in pngs.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(png)
        written.append(out / name)
    written.append(_write_html(out / "inspect.html", report, rows, fields, pngs))
    return written


def _write_html(path: Path, report, rows, fields, pngs) -> Path:
    from markupsafe import Markup

    from foveal.inspection.summary import human
    from foveal.visualize.report import png_data_uri, write_classification_report

    t, inf, tr = report["totals"], report["memory"]["inference"], report["memory"]["training"]
    summary: dict[str, Any] = {
        "model": report["model"],
        "source": report["source"],
        "input shape": " x ".join(map(str, report["input_shape"])),
        "parameters": f"{t['parameters']:,} (trainable {t['trainable_parameters']:,})",
        "FLOPs per image": f"{human(t['flops'])} ({t['flops']:,})",
        "multiplications per image": human(t["multiplications"]),
        "inference memory, batch 1": f"{inf['inference_mb']:,.2f} MB",
        f"training memory, batch {tr['batch_size']}": f"{tr['training_mb']:,.2f} MB",
    }
    if "gradcam" in report:
        g = report["gradcam"]
        summary["Grad-CAM class"] = f"{g['class_name']} (p={g['probability']:.3f}) at {g['layer']}"
    table = _layer_table(rows, fields, report["flops_convention"])
    sections: list[tuple[str, Any]] = [("Layers", table)]
    captions = {"filters.png": "First-layer filters", "feature_maps.png": "Feature maps", "gradcam.png": "Grad-CAM"}
    for name, png in pngs.items():
        figure = f'<figure><img src="{png_data_uri(png)}" alt="{captions[name]}"></figure>'
        sections.append((captions[name], Markup(figure)))
    return write_classification_report(path, title=f"Inspection of {report['model']}", summary=summary,
                                       config={}, history=None, metrics=None, extra_sections=sections)


__all__ = ["add_inspect_command", "inspect_command", "inspect_model", "inspect_parts", "model_parts", "video_parts"]
