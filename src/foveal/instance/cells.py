"""ISBI 2012 cells as instances: each cell is a connected region between membranes.

The ISBI 2012 electron-microscopy labels (``train/label/N.png``) are binary: membrane pixels
0, cell pixels 255. :func:`cell_instances` numbers the connected components of the cell pixels
(scikit-image ``measure.label``; 4-connectivity by default, so a cell never leaks into its
neighbour through a diagonal gap of a one-pixel membrane); membranes are background.

:func:`write_cell_instances` turns an ISBI folder into an instance dataset every foveal route
reads, ``foveal datasets cells`` on the command line::

    OUTPUT/images/N.png                       the slices (copied)
    OUTPUT/instances/N.png                    instance label maps (0 = membrane, 1..K = cells)
    OUTPUT/masks/N.png + OUTPUT/palette.txt   3-class U-Net + watershed targets (background,
                                              interior, boundary; see :mod:`.watershed`), the
                                              layout of ``foveal segment train --data OUTPUT``
    OUTPUT/annotations/instances.json         COCO instances, compressed RLE masks (with ``holdout``
                                              also instances_train.json and instances_test.json)

Example:
    >>> manifest = write_cell_instances("../shared/datasets/isbi-membrane/train", "cells/")  # doctest: +SKIP
    >>> manifest["instances"]                                                               # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from foveal.errors import ConfigError, DataError, OutputError
from foveal.utils_io import atomic_write_text, ensure_output_dir


def cell_instances(cells: np.ndarray, *, connectivity: int = 1, min_area: int = 0) -> np.ndarray:
    """Number the connected regions of a boolean cell mask: HxW int32, 0 = membrane, 1..K = cells.

    Args:
        cells: HxW, True (or non-zero) where a pixel belongs to a cell.
        connectivity: 1 (4-neighbours, default) or 2 (8-neighbours).
        min_area: regions with fewer pixels become background; the rest are renumbered 1..K.

    Example:
        >>> cells = np.array([[1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 1]], bool)
        >>> cell_instances(cells).tolist()
        [[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 2]]
    """
    from skimage.measure import label

    if connectivity not in (1, 2):
        raise ConfigError(f"connectivity must be 1 or 2, got {connectivity}")
    labels = label(np.asarray(cells).astype(bool), connectivity=connectivity).astype(np.int32)
    if min_area > 0 and labels.max():
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_area
        keep[0] = False
        lookup = np.zeros(len(sizes), np.int32)
        lookup[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        labels = lookup[labels]
    return labels


def write_cell_instances(
    data: str | Path,
    output: str | Path,
    *,
    connectivity: int = 1,
    min_area: int = 0,
    boundary_width: int = 2,
    holdout: int = 0,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Derive instance ground truth from an ISBI-style folder and write it (see the module docstring).

    Args:
        data: ``image/`` + ``label/`` (ISBI) or ``images/`` + ``masks/`` with binary masks, 255 = cell.
        output: folder to write (new or empty unless ``overwrite``).
        connectivity, min_area: see :func:`cell_instances`.
        boundary_width: width in pixels of the ``boundary`` class of the 3-class targets.
        overwrite: allow a non-empty ``output``.
        progress: called with a line per 10 images.

    Returns:
        The manifest (also ``OUTPUT/cells.json``): images, instances, the per-image counts and
        the options.
    """
    from foveal.data.files import write_png
    from foveal.instance.label_maps import label_map_annotations, write_coco, write_label_map
    from foveal.instance.watershed import TARGET_CLASSES, TARGET_COLOURS, instance_targets
    from foveal.segmentation.data import read_mask_folder

    source = read_mask_folder(data, mask_format="binary", class_names=["membrane", "cell"])
    out = Path(output)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"--output {out}: not empty", hint="choose a new folder, or pass --overwrite")
    ensure_output_dir(out)
    images, annotations, per_image = [], [], []
    for i in range(len(source)):
        image_path = Path(str(source.image_paths[i]))
        mask = source.load_mask(i)
        if not np.isin(mask, (0, 1)).all():
            raise DataError(f"{source.mask_paths[i]}: not a binary 0/255 membrane mask")
        labels = cell_instances(mask == 1, connectivity=connectivity, min_area=min_area)
        stem = image_path.stem
        (out / "images").mkdir(exist_ok=True)
        shutil.copyfile(image_path, out / "images" / image_path.name)
        write_label_map(out / "instances" / f"{stem}.png", labels)
        write_png(out / "masks" / f"{stem}.png", instance_targets(labels, boundary_width), TARGET_COLOURS)
        image_id = i + 1
        images.append({"id": image_id, "file_name": image_path.name, "width": int(labels.shape[1]),
                       "height": int(labels.shape[0])})
        annotations += label_map_annotations(labels, image_id=image_id, first_id=len(annotations) + 1)
        per_image.append(int(labels.max()))
        if progress and (i + 1) % 10 == 0:
            progress(f"{i + 1}/{len(source)} slices")
    atomic_write_text(out / "palette.txt", "".join(f"{r} {g} {b} {name}\n" for (r, g, b), name
                                                    in zip(TARGET_COLOURS.tolist(), TARGET_CLASSES)))
    coco = {"info": {"description": f"cells of {data} as instances (connected regions between membranes)"},
            "images": images, "annotations": annotations, "categories": [{"id": 1, "name": "cell", "supercategory": ""}]}
    write_coco(coco, out / "annotations" / "instances.json")
    if holdout:
        if not 0 < holdout < len(images):
            raise ConfigError(f"--holdout {holdout}: must leave at least one of the {len(images)} slices for training")
        for name, part in (("train", images[:-holdout]), ("test", images[-holdout:])):
            ids = {im["id"] for im in part}
            write_coco(coco | {"images": part, "annotations": [a for a in annotations if a["image_id"] in ids]},
                       out / "annotations" / f"instances_{name}.json")
    manifest = {"source": str(data), "images": len(images), "instances": len(annotations),
                "instances_per_image": per_image, "connectivity": connectivity, "min_area": min_area,
                "boundary_width": boundary_width, "holdout": holdout, "classes": list(TARGET_CLASSES)}
    atomic_write_text(out / "cells.json", json.dumps(manifest, indent=1))
    return manifest


__all__ = ["cell_instances", "write_cell_instances"]
