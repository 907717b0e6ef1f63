"""``foveal datasets cells`` and ``foveal datasets instances ...``: instance data on the command line.

* ``cells``: ISBI 2012 membranes -> cells as instances (:mod:`foveal.instance.cells`).
* ``instances to-coco``: an image + instance-label-map folder -> COCO JSON with RLE masks.
* ``instances to-label-maps``: a COCO instances JSON -> instance label maps.
* ``instances targets``: U-Net + watershed targets (3 classes, or K + 2 with K object classes).
* ``instances select``: a COCO instances JSON cut down to some categories (e.g. COCO's person).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

EPILOG_CELLS = """examples:
  # ISBI cells: instances/, COCO annotations (the last 5 slices also as a test file), 3-class targets
  foveal datasets cells --data ../shared/datasets/isbi-membrane/train --output cells/ --holdout 5
  # U-Net + watershed in the instance task (scored like Mask R-CNN) ...
  foveal instance train --model unet-watershed --data cells/annotations/instances_train.json \\
      --test-data cells/annotations/instances_test.json --image-size 512 --channels 1 --crop-size 256
  # ... or a U-Net trained by foveal segment train on masks/, then scored as instances
  foveal segment train --data cells/ --holdout 5 --model unet --model-options width=16,depth=4,batch_norm=true
  foveal segment instances evaluate runs/RUN/best.keras --data cells/ --split test
"""

EPILOG_TO_COCO = """examples:
  foveal datasets instances to-coco my_set/ --output my_set/annotations/instances.json --classes nucleus
  # Cityscapes-style values (class id * 1000 + instance), names of classes 24..26
  foveal datasets instances to-coco city/ --output city.json --class-encoding cityscapes \\
      --classes 24=person 25=rider 26=car
"""

EPILOG_TO_MAPS = """examples:
  foveal datasets instances to-label-maps cells/annotations/instances.json --output maps/ --images cells/images
  foveal datasets instances to-label-maps coco.json --output maps/ --class-encoding cityscapes
"""

EPILOG_TARGETS = """examples:
  foveal datasets instances targets my_set/ --boundary-width 2     # writes my_set/masks/ and palette.txt
  foveal segment train --data my_set/ --model unet
  # several classes (K + 2 targets: background, interior:NAME per class, boundary) from COCO polygons or RLE
  foveal datasets synth shapes --output shapes/ --seed 0
  foveal datasets instances targets shapes/annotations/instances_train.json --output shapes-targets/
  foveal segment train --data shapes-targets/ --model unet --model-options width=16,depth=3
  foveal segment instances evaluate runs/RUN/best.keras --data shapes/annotations/instances_test.json
  # or from Cityscapes-encoded label maps (class id * 1000 + instance)
  foveal datasets instances targets city/ --class-encoding cityscapes --classes 24=person 26=car
"""

EPILOG_SELECT = """examples:
  # COCO's person class alone (all images: those without a person are negatives)
  foveal datasets instances select ../shared/datasets/coco-mini/annotations/instances_train2017.json \\
      --classes person --output person/instances_train2017.json
  foveal instance train --data person/instances_train2017.json --test-data person/instances_val2017.json
  # two classes, only the images that hold one of them
  foveal datasets instances select coco.json --classes person car --drop-empty --output people-cars.json
"""


def _cells(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.cells import write_cell_instances

    manifest = write_cell_instances(args.data, args.output, connectivity=args.connectivity, min_area=args.min_area,
                                    boundary_width=args.boundary_width, holdout=args.holdout, overwrite=args.overwrite,
                                    progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['instances']} cells in {manifest['images']} images to {args.output}: instances/, "
          f"masks/ (background, interior, boundary of {args.boundary_width} px), annotations/instances.json")
    return 0


def _class_names(values: list[str] | None, encoding: str) -> list[str] | dict[int, str] | None:
    from foveal.errors import ConfigError

    if not values:
        return None
    if encoding == "single" or not any("=" in v for v in values):
        return list(values)
    table = {}
    for v in values:
        key, sep, name = v.partition("=")
        if not sep or not key.isdigit() or not name:
            raise ConfigError(f"--classes {v!r}: give ID=NAME pairs (e.g. 26=car) or names for ids 1, 2, ...")
        table[int(key)] = name
    return table


def _to_coco(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.label_maps import label_maps_to_coco, write_coco

    coco = label_maps_to_coco(args.root, class_encoding=args.class_encoding,
                              class_names=_class_names(args.classes, args.class_encoding), min_area=args.min_area,
                              images=args.images_folder, instances=args.instances_folder,
                              skip_invalid=args.skip_invalid, progress=lambda line: print(line, file=sys.stderr),
                              class_maps=args.class_maps)
    write_coco(coco, args.output)
    info = coco["info"]
    print(json.dumps(info, indent=1) if args.json else
          f"wrote {info['instances']} instances of {len(coco['categories'])} class(es) in {info['images']} images to "
          f"{args.output}" + (f"; {info['crowd']} crowd region(s) (class-only values of instance classes)"
                               if info.get("crowd") else "")
          + (f"; skipped {len(info['skipped'])} file(s)" if info["skipped"] else "")
          + (f"; dropped {info['small']} instance(s) under {args.min_area} px" if info["small"] else ""))
    return 0


def _to_maps(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.label_maps import coco_to_label_maps

    manifest = coco_to_label_maps(args.coco, args.output, images=args.images, class_encoding=args.class_encoding,
                                  skip_invalid=args.skip_invalid, overwrite=args.overwrite)
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['images']} label maps ({manifest['instances']} instances) to "
          f"{Path(args.output) / 'instances'}; {manifest['crowd']} crowd region(s) "
          f"{'written as their class id' if args.class_encoding == 'cityscapes' else 'left out'}; "
          f"{manifest['overlap_pixels']} overlapping pixel(s) went to the later annotation")
    return 0


def _targets(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.unet_watershed import write_targets

    manifest = write_targets(args.root, output=args.output, boundary_width=args.boundary_width, images=args.images,
                             class_encoding=args.class_encoding,
                             class_names=_class_names(args.classes, args.class_encoding),
                             skip_invalid=args.skip_invalid, overwrite=args.overwrite)
    classes = manifest["classes"]
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['masks']} target masks of {len(classes)} classes ({', '.join(classes[:6])}"
          f"{', ...' if len(classes) > 6 else ''}; boundary of {args.boundary_width} px) to "
          f"{Path(manifest['root']) / 'masks'} and palette.txt"
          + (f"; {manifest['crowd_as_ignore']} crowd region(s) written as \"don't care\" (index 255, colour "
             "224 224 192: no loss, no metric)" if manifest["crowd_as_ignore"] else "")
          + (f"; skipped {len(manifest['skipped'])} file(s)" if manifest["skipped"] else ""))
    return 0


def _select(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.instance.label_maps import select_classes, write_coco

    if Path(args.output).exists() and not args.overwrite:
        from foveal.errors import OutputError

        raise OutputError(f"--output {args.output}: exists", hint="choose another file, or pass --overwrite")
    coco = select_classes(args.coco, args.classes, images=args.images, drop_empty=args.drop_empty)
    write_coco(coco, args.output)
    chosen = coco["info"]["selected"]
    print(json.dumps(chosen, indent=1) if args.json else
          f"wrote {chosen['instances']} instance(s) of {', '.join(chosen['classes'])} in {chosen['images']} images "
          f"({chosen['images_with_instances']} with an instance) to {args.output}"
          + (f"; {chosen['crowd']} crowd region(s) kept" if chosen["crowd"] else ""))
    return 0


def add_instance_data_commands(actions: argparse._SubParsersAction) -> None:
    """Add ``cells`` and ``instances`` to the ``foveal datasets`` actions."""
    raw = argparse.RawDescriptionHelpFormatter
    c = actions.add_parser("cells", help="ISBI membranes -> cells as instances (label maps, COCO RLE, targets)",
                           description="Derive instance ground truth from ISBI 2012 membrane labels: each cell is a "
                           "connected region of the cell pixels (255) between membranes (0). Writes OUTPUT/images/, "
                           "OUTPUT/instances/ (label maps), OUTPUT/annotations/instances.json (COCO, RLE masks) and "
                           "OUTPUT/masks/ + palette.txt (background/interior/boundary targets for U-Net + watershed).",
                           epilog=EPILOG_CELLS, formatter_class=raw)
    c.add_argument("--data", required=True, metavar="DIR", help="ISBI folder: image/ + label/ (or images/ + masks/)")
    c.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    c.add_argument("--connectivity", type=int, choices=(1, 2), default=1,
                   help="1: 4-neighbours (default; diagonal gaps in a membrane do not join cells), 2: 8-neighbours")
    c.add_argument("--min-area", type=int, default=0, help="cells with fewer pixels become background (default: 0)")
    c.add_argument("--boundary-width", type=int, default=2, help="boundary class width in pixels (default: 2)")
    c.add_argument("--holdout", type=int, default=0, metavar="N", help="also write annotations/instances_train.json "
                   "and instances_test.json, the last N slices being the test set (default: 0, no split)")
    c.add_argument("--overwrite", action="store_true", help="write into a non-empty --output")
    c.add_argument("--json", action="store_true", help="print the manifest as JSON")
    c.set_defaults(func=_cells)

    i = actions.add_parser("instances", help="instance label maps <-> COCO RLE, U-Net + watershed targets",
                           description="Convert instance data: image + instance-label-map folders (pixel value = "
                           "instance id, 0 = background) and COCO instances JSON with RLE masks.")
    kinds = i.add_subparsers(dest="kind", metavar="KIND", required=True)
    kinds.add_parser = functools.partial(kinds.add_parser, allow_abbrev=False)  # type: ignore[method-assign]
    t = kinds.add_parser("to-coco", help="label-map folder -> COCO instances JSON (compressed RLE)",
                         description="Read ROOT/images/ + ROOT/instances/ (PNG label maps, same stems) and write a "
                         "COCO instances JSON whose masks are compressed RLE (pycocotools).", epilog=EPILOG_TO_COCO,
                         formatter_class=raw)
    t.add_argument("root", help="folder with images/ and instances/")
    t.add_argument("--output", required=True, metavar="FILE.json", help="COCO file to write")
    t.add_argument("--class-encoding", choices=("single", "cityscapes", "voc"), default="single",
                   help="single: every id is one class (default); cityscapes: value = class id * 1000 + instance, "
                   "values 1..999 of an instance class are crowd regions (iscrowd 1, ignored by scoring); voc: "
                   "Pascal VOC's SegmentationObject PNGs, as single but 255 (the void outlines) is no instance")
    t.add_argument("--classes", nargs="+", metavar="NAME", help="single: the class name (default: object); "
                   "cityscapes: ID=NAME pairs, or names of ids 1, 2, ... (default: class_ID)")
    t.add_argument("--class-maps", metavar="FOLDER", help="voc: the class-index PNG folder under ROOT (VOC's "
                   "SegmentationClass); an object's class is the one most of its pixels have (default: one class)")
    t.add_argument("--min-area", type=int, default=0, help="drop instances with fewer pixels (default: 0)")
    t.add_argument("--images-folder", default="images", help="image folder name (default: images)")
    t.add_argument("--instances-folder", default="instances", help="label-map folder name (default: instances)")
    t.add_argument("--skip-invalid", action="store_true", help="skip (and list) unpaired, unreadable or mis-sized files")
    t.add_argument("--json", action="store_true", help="print the counts as JSON")
    t.set_defaults(func=_to_coco)

    m = kinds.add_parser("to-label-maps", help="COCO instances JSON -> label-map folder",
                         description="Draw every image's instances (polygons or RLE) into OUTPUT/instances/NAME.png "
                         "(8-bit, or 16-bit when ids exceed 255). Crowd regions are left out; where masks overlap, "
                         "the later annotation wins.", epilog=EPILOG_TO_MAPS, formatter_class=raw)
    m.add_argument("coco", help="COCO instances JSON")
    m.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    m.add_argument("--images", metavar="DIR", help="copy the images from this folder to OUTPUT/images/")
    m.add_argument("--class-encoding", choices=("single", "cityscapes"), default="single",
                   help="single: ids 1..N, one category (default); cityscapes: category id * 1000 + k")
    m.add_argument("--skip-invalid", action="store_true", help="skip (and list) empty or unreadable masks")
    m.add_argument("--overwrite", action="store_true", help="write into a non-empty --output")
    m.add_argument("--json", action="store_true", help="print the manifest as JSON")
    m.set_defaults(func=_to_maps)

    s = kinds.add_parser("select", help="a COCO instances file cut down to some categories (e.g. person)",
                         description="Write a COCO instances JSON holding only the named categories (their ids "
                         "and names kept) and their annotations, crowd regions included. Every image stays unless "
                         "--drop-empty; file_name becomes the image's absolute path, so the file reads from "
                         "anywhere.", epilog=EPILOG_SELECT, formatter_class=raw)
    s.add_argument("coco", help="COCO instances JSON")
    s.add_argument("--classes", nargs="+", required=True, metavar="NAME", help="category names to keep")
    s.add_argument("--output", required=True, metavar="FILE.json", help="COCO file to write")
    s.add_argument("--images", metavar="DIR", help="the file's image folder (default: found beside it)")
    s.add_argument("--drop-empty", action="store_true", help="keep only the images with an instance of the classes")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    s.add_argument("--json", action="store_true", help="print the counts as JSON")
    s.set_defaults(func=_select)

    g = kinds.add_parser("targets", help="write U-Net + watershed targets (background/interior by class/boundary)",
                         description="Write the U-Net + watershed targets of instance data as index PNGs "
                         "(palette mode) MASKS/NAME.png and palette.txt, for `foveal segment train --data FOLDER`. "
                         "One object class: 0 background, 1 interior, 2 boundary. K > 1 classes (a COCO file's "
                         "categories, or --class-encoding cityscapes): 0 background, 1..K interior:NAME, K+1 "
                         "boundary, the classes `foveal segment instances evaluate|predict` match to the COCO "
                         "categories by name. ROOT is a folder (images/ + instances/; written into it) or a "
                         "COCO instances .json (with --output: its images are copied there).",
                         epilog=EPILOG_TARGETS, formatter_class=raw)
    g.add_argument("root", help="folder with images/ and instances/, or a COCO instances .json")
    g.add_argument("--output", metavar="DIR", help="with a COCO file: the folder to write (images/, masks/, "
                   "palette.txt)")
    g.add_argument("--images", metavar="DIR", help="a COCO file's image folder (default: found beside it)")
    g.add_argument("--class-encoding", choices=("single", "cityscapes"), default="single",
                   help="a folder's label maps: single (one class, 3 targets; default) or cityscapes (value = "
                   "class id * 1000 + instance: K + 2 targets)")
    g.add_argument("--classes", nargs="+", metavar="NAME", help="cityscapes: ID=NAME pairs, or names of ids 1, 2, "
                   "... (default: class_ID)")
    g.add_argument("--boundary-width", type=int, default=2, help="boundary width in pixels (default: 2)")
    g.add_argument("--skip-invalid", action="store_true", help="skip (and list) unpaired, mis-sized or invalid files")
    g.add_argument("--overwrite", action="store_true", help="with --output: write into a non-empty folder")
    g.add_argument("--json", action="store_true", help="print the manifest as JSON")
    g.set_defaults(func=_targets)


__all__ = ["add_instance_data_commands"]
