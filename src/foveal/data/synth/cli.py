"""``foveal datasets synth KIND``: write generated datasets (see :mod:`foveal.data.synth`)."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

EPILOG_MNIST_M = """examples:
  # MNIST-M-style: the 70,000 MNIST digits over patches of the coco-mini photos
  foveal datasets synth mnist-m --digits ../shared/datasets/mnist \\
      --backgrounds ../shared/datasets/coco-mini --output data/mnist-m --seed 0
  foveal datasets synth mnist-m --data mnist --backgrounds photos/ --output mnist-m --limit 5000
  foveal train --data data/mnist-m --model lenet5 --channels 3      # read like any image folder
"""


def _mnist_m(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.synth.mnist_m import make_mnist_m

    manifest = make_mnist_m(args.digits, args.backgrounds, args.output, seed=args.seed, limit=args.limit,
                            binarize=args.binarize, overwrite=args.overwrite,
                            progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {sum(manifest['counts'].values())} images ({', '.join(f'{k} {v}' for k, v in manifest['counts'].items())}) "
          f"to {args.output} from {manifest['photos']} background photo(s), seed {args.seed}")
    return 0


EPILOG_COMPOSITE = """examples:
  # coco-mini's people and dogs pasted onto its own photos, 320x320, COCO boxes + masks
  foveal datasets synth composite --objects ../shared/datasets/coco-mini/annotations/instances_train2017.json \\
      --backgrounds ../shared/datasets/coco-mini/val2017 --categories person dog --count 500 --output synth/
  foveal detect train --data synth/annotations/instances_train.json      # read like any COCO file
  foveal segment train --data synth/annotations/instances_train.json
"""


def _composite(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.synth.composite import make_composites

    manifest = make_composites(args.objects, args.backgrounds, args.output, count=args.count,
                               size=(args.size[0], args.size[-1]), objects_per_image=tuple(args.objects_per_image),
                               scale=tuple(args.scale), rotation=args.rotation, min_visible=args.min_visible,
                               noise=args.noise, blur=args.blur, jitter=args.jitter, min_area=args.min_area,
                               categories=args.categories, images=args.images, split=args.split, seed=args.seed,
                               overwrite=args.overwrite, progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['count']} images with {manifest['instances']} objects ({manifest['cutouts']} cut-outs "
          f"over {manifest['photos']} background photo(s), seed {args.seed}) to {args.output}; "
          f"annotations: {manifest['annotations']}")
    return 0


EPILOG_SHAPES = """examples:
  foveal datasets synth shapes --output data/shapes --seed 0            # 300/50/100 images, 128x128
  foveal datasets synth shapes --output data/shapes-big --counts 2000 200 200 --size 192 --objects 2 6
  foveal instance train --data data/shapes --epochs 20                  # Mask R-CNN on it
"""


def _shapes(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.synth.shapes import make_shapes

    manifest = make_shapes(args.output, counts=tuple(args.counts), size=(args.size[0], args.size[-1]),
                           objects=tuple(args.objects), radius=tuple(args.radius), min_visible=args.min_visible,
                           noise=args.noise, seed=args.seed, overwrite=args.overwrite,
                           progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {sum(manifest['counts'].values())} images ({', '.join(f'{k} {v}' for k, v in manifest['counts'].items())}) "
          f"with {sum(manifest['instances'].values())} shapes to {args.output}, seed {args.seed}")
    return 0


EPILOG_MOVING_SHAPES = """examples:
  # training frames (CSV boxes), an unseen test video and its MOT ground truth, then detect and track
  foveal datasets synth moving-shapes --output shapes/ --seed 0
  foveal detect train --data shapes/ --image-size 128 --output runs --name shapes-det
  foveal video track runs/shapes-det/best.keras shapes/video.mp4 --gt shapes/gt.txt --every 3
"""


def _moving_shapes(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.video.synth import make_moving_shapes

    manifest = make_moving_shapes(args.output, seed=args.seed, frames=args.frames, size=tuple(args.size) if
                                  len(args.size) == 2 else args.size[0], objects=args.objects,
                                  train_sequences=args.train_sequences, train_frames=args.train_frames,
                                  val_frames=args.val_frames, fps=args.fps, overwrite=args.overwrite)
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {sum(manifest['images'].values())} training/validation frames with boxes, the test video "
          f"{manifest['video']} ({manifest['video_frames']} frames) and its tracks {manifest['gt']} "
          f"(seed {args.seed}) to {args.output}")
    return 0


def add_synth_command(actions: argparse._SubParsersAction) -> None:
    """Add ``synth`` with its kinds to the ``foveal datasets`` actions."""
    s = actions.add_parser("synth", help="generate a dataset (MNIST-M-style digits, composited cut-outs, shapes, "
                           "moving shapes with tracks)",
                           description="Generate datasets, deterministic for a seed, in layouts foveal reads.")
    kinds = s.add_subparsers(dest="kind", metavar="KIND", required=True)
    kinds.add_parser = functools.partial(kinds.add_parser, allow_abbrev=False)  # type: ignore[method-assign]
    m = kinds.add_parser("mnist-m", help="digits blended with random photo patches, |patch - digit| (Ganin et al.)",
                         description="MNIST-M-style digits: each digit blended with a random patch of a random "
                         "photo, |patch - digit| per channel (Ganin et al., JMLR 2016). Writes OUTPUT/<split>/<class>/"
                         "NNNNNN.png and OUTPUT/mnist-m.json.", epilog=EPILOG_MNIST_M,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--digits", "--data", dest="digits", required=True, metavar="SPEC",
                   help="the digits: an MNIST IDX folder, 'mnist' (keras.datasets), an .npz or a class folder")
    m.add_argument("--backgrounds", required=True, metavar="DIR",
                   help="folder of photos (searched recursively) the patches are cut from")
    m.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    m.add_argument("--seed", type=int, default=0, help="random seed: photo and place of every patch (default: 0)")
    m.add_argument("--limit", type=int, metavar="N", help="at most N digits per split (the first ones)")
    m.add_argument("--binarize", action="store_true", help="blend the digit as 0/255 (strokes invert the photo "
                   "fully) instead of its gray levels")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    m.add_argument("--json", action="store_true", help="print the manifest as JSON")
    m.set_defaults(func=_mnist_m)

    c = kinds.add_parser("composite", help="object cut-outs (COCO masks) pasted onto photos, with COCO boxes + masks",
                         description="Cut objects out of a COCO instances file (polygon or RLE masks), paste them onto "
                         "background photos at random scale, rotation and position, add noise, blur and colour "
                         "jitter, and write OUTPUT/SPLIT/*.jpg with OUTPUT/annotations/instances_SPLIT.json (boxes and "
                         "visible-area masks); with --masks, from an image folder and its mask folder.", epilog=EPILOG_COMPOSITE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--objects", required=True, metavar="FILE.json", help="COCO instances file whose masks give the "
                   "cut-outs")
    c.add_argument("--images", metavar="DIR", help="its image folder (default: found beside it)")
    c.add_argument("--backgrounds", required=True, metavar="DIR", help="folder of photos, each at least --size")
    c.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    c.add_argument("--count", type=int, default=100, help="images to write (default: 100)")
    c.add_argument("--size", type=int, nargs="+", default=[320], metavar="N", help="SIZE or HEIGHT WIDTH (default: 320)")
    c.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories (default: all)")
    c.add_argument("--objects-per-image", type=int, nargs=2, default=[1, 4], metavar=("MIN", "MAX"))
    c.add_argument("--scale", type=float, nargs=2, default=[0.2, 0.6], metavar=("MIN", "MAX"),
                   help="object's long side / image's short side (default: 0.2 0.6)")
    c.add_argument("--rotation", type=float, default=20.0, help="largest rotation in degrees (default: 20)")
    c.add_argument("--min-visible", type=float, default=0.3, help="drop objects occluded below this visible fraction")
    c.add_argument("--min-area", type=float, default=400.0, help="smallest source mask in pixels (default: 400)")
    c.add_argument("--noise", type=float, default=4.0, help="Gaussian noise sigma in grey levels (default: 4; 0: off)")
    c.add_argument("--blur", type=float, default=1.0, help="largest Gaussian blur radius (default: 1; 0: off)")
    c.add_argument("--jitter", type=float, default=0.2, help="brightness/contrast/saturation jitter (default: 0.2)")
    c.add_argument("--split", default="train", help="image folder and annotation name (default: train)")
    c.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    c.add_argument("--json", action="store_true", help="print the manifest as JSON")
    c.set_defaults(func=_composite)
    add_mask_folder_kinds(kinds, c)
    add_render_kind(kinds)

    sh = kinds.add_parser("shapes", help="circles, squares and triangles on noisy backgrounds, COCO boxes + RLE masks",
                          description="Draw filled circles, squares and triangles (3 classes; random colour, size, "
                          "rotation, place; touching and overlapping) on noisy gradient backgrounds and write "
                          "OUTPUT/SPLIT/*.png with OUTPUT/annotations/instances_SPLIT.json (boxes and visible-area RLE "
                          "masks) for train, val and test. Deterministic for a seed.", epilog=EPILOG_SHAPES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    sh.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    sh.add_argument("--counts", type=int, nargs=3, default=[300, 50, 100], metavar=("TRAIN", "VAL", "TEST"),
                    help="images per split (default: 300 50 100; 0 leaves a split out)")
    sh.add_argument("--size", type=int, nargs="+", default=[128], metavar="N", help="SIZE or HEIGHT WIDTH (default: 128)")
    sh.add_argument("--objects", type=int, nargs=2, default=[1, 4], metavar=("MIN", "MAX"),
                    help="shapes per image (default: 1 4)")
    sh.add_argument("--radius", type=float, nargs=2, default=[0.08, 0.2], metavar=("MIN", "MAX"),
                    help="circumradius / image's short side (default: 0.08 0.2)")
    sh.add_argument("--min-visible", type=float, default=0.6, help="least visible fraction of every shape after "
                    "overlaps (default: 0.6)")
    sh.add_argument("--noise", type=float, default=12.0, help="Gaussian noise sigma in grey levels (default: 12)")
    sh.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sh.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    sh.add_argument("--json", action="store_true", help="print the manifest as JSON")
    sh.set_defaults(func=_shapes)

    v = kinds.add_parser("moving-shapes", help="videos of moving circles and squares with ground-truth tracks (MOT)",
                         description="Draw circles and squares moving and bouncing over a textured background "
                         "(deterministic per seed): training frames with CSV boxes (OUTPUT/images, train.csv, "
                         "val.csv; read by `foveal detect train --data OUTPUT`), and an unseen test video "
                         "OUTPUT/video.mp4 with its tracks in MOT ground-truth format (OUTPUT/gt.txt) for "
                         "`foveal video track --gt`.", epilog=EPILOG_MOVING_SHAPES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    v.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    v.add_argument("--frames", type=int, default=150, help="frames of the test video (default: 150)")
    v.add_argument("--size", type=int, nargs="+", default=[128], metavar="N", help="SIZE or HEIGHT WIDTH "
                   "(default: 128)")
    v.add_argument("--objects", type=int, default=3, help="shapes in every sequence (default: 3)")
    v.add_argument("--train-sequences", type=int, default=3, help="training sequences (default: 3)")
    v.add_argument("--train-frames", type=int, default=60, help="frames of each training sequence (default: 60)")
    v.add_argument("--val-frames", type=int, default=30, help="frames of the validation sequence (default: 30)")
    v.add_argument("--fps", type=float, default=10.0, help="frame rate of the test video (default: 10)")
    v.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    v.add_argument("--json", action="store_true", help="print the manifest as JSON")
    v.set_defaults(func=_moving_shapes)


EPILOG_RENDER = """examples:
  # every mesh under models/ (one category per file) at random poses over coco-mini photos
  foveal datasets synth render --meshes models/ --backgrounds ../shared/datasets/coco-mini/val2017 \\
      --count 500 --size 256 --output render/ --seed 0
  foveal datasets synth render --meshes mug.glb duck.obj --count 50 --output r/   # flat colour backgrounds
  foveal datasets synth render --meshes models/ --depth png --output rd/   # + 16-bit depth maps (z * 1000)
  foveal datasets synth render --meshes models/ --depth npy --no-amodal --output rn/   # float32 depth, no amodal
  foveal detect train --data render/annotations/instances_train.json     # read like any COCO file
"""


def _render(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.synth.render import make_renders

    manifest = make_renders(args.meshes, args.output, backgrounds=args.backgrounds, count=args.count,
                            size=(args.size[0], args.size[-1]), objects_per_image=tuple(args.objects_per_image),
                            distance=tuple(args.distance), fov=args.fov, ambient=tuple(args.ambient),
                            light=tuple(args.light), min_visible=args.min_visible, samples=args.samples,
                            noise=args.noise, blur=args.blur, jitter=args.jitter, split=args.split, seed=args.seed,
                            amodal=args.amodal, depth=args.depth, depth_scale=args.depth_scale,
                            overwrite=args.overwrite, progress=lambda line: print(line, file=sys.stderr))
    extras = [name for name, on in (("amodal masks", args.amodal), (f"{args.depth} depth maps", args.depth)) if on]
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['count']} images with {manifest['instances']} objects ({len(manifest['meshes'])} mesh(es), "
          f"seed {args.seed}, {manifest['renderer']}{'; ' + ' and '.join(extras) if extras else ''}) to "
          f"{args.output}; annotations: {manifest['annotations']}")
    return 0


def add_render_kind(kinds: argparse._SubParsersAction) -> None:
    """Add ``render`` (3D meshes drawn headless) to the ``foveal datasets synth`` kinds."""
    r = kinds.add_parser("render", help="3D meshes rendered headless at random poses, with COCO boxes, masks, poses",
                         description="Render meshes (OBJ, PLY, GLB/glTF, STL, OFF; loaded by trimesh) with moderngl on "
                         "a headless EGL context at random rotations, distances, image positions and lights, over "
                         "random crops of background photos, and write OUTPUT/SPLIT/*.jpg with OUTPUT/annotations/"
                         "instances_SPLIT.json: one category per mesh file, visible-area boxes and RLE masks, and each "
                         "object's pose (X_cam = scale * R @ X_mesh + t, OpenCV camera frame; the image's camera_K).",
                         epilog=EPILOG_RENDER, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--meshes", required=True, nargs="+", metavar="PATH", help="mesh files or folders of them")
    r.add_argument("--backgrounds", metavar="DIR", help="folder of photos, each at least --size (default: flat colours)")
    r.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    r.add_argument("--count", type=int, default=100, help="images to write (default: 100)")
    r.add_argument("--size", type=int, nargs="+", default=[256], metavar="N", help="SIZE or HEIGHT WIDTH (default: 256)")
    r.add_argument("--objects-per-image", type=int, nargs=2, default=[1, 3], metavar=("MIN", "MAX"))
    r.add_argument("--distance", type=float, nargs=2, default=[3.0, 8.0], metavar=("MIN", "MAX"),
                   help="camera distance in bounding-sphere radii of the mesh (default: 3 8)")
    r.add_argument("--fov", type=float, default=50.0, help="vertical field of view in degrees (default: 50)")
    r.add_argument("--ambient", type=float, nargs=2, default=[0.2, 0.5], metavar=("MIN", "MAX"),
                   help="ambient light (default: 0.2 0.5)")
    r.add_argument("--light", type=float, nargs=2, default=[0.5, 1.2], metavar=("MIN", "MAX"),
                   help="strength of the directional light, random direction and tint (default: 0.5 1.2)")
    r.add_argument("--min-visible", type=float, default=0.3, help="drop objects occluded below this visible fraction")
    r.add_argument("--samples", type=int, default=4, help="multisampling of the colour image (1: off; default: 4)")
    r.add_argument("--noise", type=float, default=2.0, help="Gaussian noise sigma in grey levels (default: 2; 0: off)")
    r.add_argument("--blur", type=float, default=0.5, help="largest Gaussian blur radius (default: 0.5; 0: off)")
    r.add_argument("--jitter", type=float, default=0.1, help="brightness/contrast/saturation jitter (default: 0.1)")
    r.add_argument("--split", default="train", help="image folder and annotation name (default: train)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    r.add_argument("--amodal", action=argparse.BooleanOptionalAction, default=True,
                   help="write each object's amodal mask (whole silhouette, occluded parts included) as "
                   "amodal_segmentation RLE with amodal_bbox, amodal_area and occlusion (foveal's fields; default: on)")
    r.add_argument("--depth", choices=["png", "npy"], help="write a depth map per image to OUTPUT/depth/SPLIT/: "
                   "camera-frame z of the nearest surface, 0 for background; png: 16-bit z * --depth-scale, "
                   "npy: float32 (default: none)")
    r.add_argument("--depth-scale", type=float, default=1000.0, help="PNG counts per camera unit (one unit is a "
                   "mesh's bounding-sphere radius; default: 1000)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    r.add_argument("--json", action="store_true", help="print the manifest as JSON")
    r.set_defaults(func=_render)


EPILOG_GRABCUT = """examples:
  # a mask per raccoon box of the training split (GrabCut initialised with the box), then composites
  foveal datasets synth grabcut --data ../shared/datasets/raccoon --split train --output raccoon-masks
  foveal datasets synth composite --objects ../shared/datasets/raccoon/images --masks raccoon-masks \\
      --backgrounds ../shared/datasets/coco-mini/train2017 --count 600 --size 256 --output raccoon-synth
"""


def _grabcut(args: argparse.Namespace, _: dict[str, Any]) -> int:
    from foveal.data.synth.grabcut import grabcut_masks

    manifest = grabcut_masks(args.data, args.output, split=args.split, iterations=args.iterations, margin=args.margin,
                             work_size=args.work_size, seed=args.seed, min_fraction=args.min_fraction,
                             last_resort=args.last_resort, overwrite=args.overwrite,
                             progress=lambda line: print(line, file=sys.stderr))
    m = manifest["methods"]
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['masks']} mask file(s) with {manifest['objects']} objects from {manifest['images']} "
          f"{args.split} images to {args.output} (foreground {manifest['mean_box_fraction']} of a box on average); "
          f"boxes by plain GrabCut {m['rect']}, by the fallbacks: ellipse prior {m['ellipse']}, foreground core "
          f"{m['core']}, last resort ({args.last_resort}) {m.get(f'last-resort-{args.last_resort}', 0)}; "
          f"{len(manifest['empty_boxes'])} box(es) left without a mask")
    return 0


def _composite_any(args: argparse.Namespace, extra: dict[str, Any]) -> int:
    """``composite`` with cut-outs from a COCO file, or from an image folder + ``--masks`` folder."""
    if args.masks is None:
        return _composite(args, extra)
    from foveal.data.synth.composite import make_composites

    manifest = make_composites(args.objects, args.backgrounds, args.output, count=args.count,
                               size=(args.size[0], args.size[-1]), objects_per_image=tuple(args.objects_per_image),
                               scale=tuple(args.scale), rotation=args.rotation, min_visible=args.min_visible,
                               noise=args.noise, blur=args.blur, jitter=args.jitter, min_area=args.min_area,
                               categories=args.categories, split=args.split, seed=args.seed, overwrite=args.overwrite,
                               masks=args.masks, category=args.category,
                               progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(manifest, indent=1) if args.json else
          f"wrote {manifest['count']} images with {manifest['instances']} objects ({manifest['cutouts']} cut-outs "
          f"over {manifest['photos']} background photo(s), seed {args.seed}) to {args.output}; "
          f"annotations: {manifest['annotations']}")
    return 0


def add_mask_folder_kinds(kinds: argparse._SubParsersAction, composite: argparse.ArgumentParser) -> None:
    """Cut-outs from mask folders: ``composite --masks`` and the ``grabcut`` kind that writes such masks."""
    composite.add_argument("--masks", metavar="DIR", help="take the cut-outs from this folder of masks instead of a "
                           "COCO file: --objects is then the image folder, each mask is named like its image (0: "
                           "background, each other value one object), one subfolder per category or flat")
    composite.add_argument("--category", default="object", help="category name of a flat --masks folder's objects "
                           "(default: object)")
    composite.set_defaults(func=_composite_any)
    g = kinds.add_parser("grabcut", help="object masks from a box dataset's boxes with GrabCut (for composite --masks)",
                         description="Run OpenCV's GrabCut initialised with each box of one split of a box dataset "
                         "(VOC, COCO, YOLO, CSV) and write OUTPUT/<class>/<image stem>.png instance masks (k: the "
                         "k-th box) and OUTPUT/grabcut.json, the layout composite --masks reads. Where GrabCut finds "
                         "less than --min-fraction of a box, it retries with an ellipse prior, then with a certain-"
                         "foreground core, then takes --last-resort; the summary counts each.",
                         epilog=EPILOG_GRABCUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--data", required=True, metavar="SPEC", help="box dataset (a VOC folder, COCO .json, YOLO folder, CSV)")
    g.add_argument("--output", required=True, metavar="DIR", help="folder to write (new or empty)")
    g.add_argument("--split", default="train", help="which split's boxes (default: train; never cut the test split "
                   "you score on)")
    g.add_argument("--iterations", type=int, default=5, help="GrabCut rounds (default: 5)")
    g.add_argument("--margin", type=float, default=0.25, help="background around the box GrabCut learns from, as a "
                   "fraction of the box (default: 0.25)")
    g.add_argument("--work-size", type=int, default=256, help="longest side of the crop GrabCut runs on (default: 256)")
    g.add_argument("--min-fraction", type=float, default=0.1, help="a GrabCut result covering less of its box "
                   "counts as failed and the next fallback runs (default: 0.1)")
    g.add_argument("--last-resort", choices=["ellipse", "box", "skip"], default="ellipse",
                   help="when GrabCut fails with the rectangle, an ellipse prior and a foreground core: the ellipse "
                   "inscribed in the box, the whole box, or no mask (default: ellipse)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the colour models (default: 0)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    g.add_argument("--json", action="store_true", help="print the manifest as JSON")
    g.set_defaults(func=_grabcut)


__all__ = ["add_mask_folder_kinds", "add_render_kind", "add_synth_command"]
