"""`foveal datasets instances select`: a COCO instances file cut down to some categories, whose
absolute file names read from anywhere; an unknown name is refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.cli.main import main
from foveal.instance.data import read_instances
from foveal.instance.label_maps import select_classes


def _square(x: int, y: int, side: int) -> list[list[float]]:
    return [[x, y, x + side, y, x + side, y + side, x, y + side]]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """3 images of 32x32 in train2017/: a person and a car; a car only; a person crowd and a person."""
    root = tmp_path_factory.mktemp("coco")
    (root / "train2017").mkdir()
    images, annotations = [], []
    layout = {1: [(1, 0), (3, 0)], 2: [(3, 0)], 3: [(1, 1), (1, 0)]}  # image id -> (category, iscrowd)
    for image_id, objects in layout.items():
        Image.fromarray(np.full((32, 32, 3), 40 * image_id, np.uint8)).save(root / "train2017" / f"{image_id}.jpg")
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 32, "height": 32})
        for k, (category, crowd) in enumerate(objects):
            annotations.append({"id": 10 * image_id + k, "image_id": image_id, "category_id": category,
                                "iscrowd": crowd, "segmentation": _square(2 + 14 * k, 4, 10), "area": 100,
                                "bbox": [2 + 14 * k, 4, 10, 10]})
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 3, "name": "car"}]}
    path = root / "annotations" / "instances_train2017.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


def test_select_keeps_the_named_categories_and_reads_from_anywhere(coco, tmp_path, capsys):
    out = tmp_path / "elsewhere" / "person.json"
    assert main(["datasets", "instances", "select", str(coco), "--classes", "person", "--output", str(out)]) == 0
    assert "wrote 2 instance(s) of person in 3 images (2 with an instance)" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["categories"] == [{"id": 1, "name": "person"}]
    assert sorted(a["id"] for a in written["annotations"]) == [10, 30, 31]  # the crowd region (30) stays
    assert [im["file_name"] for im in written["images"]] == [str(coco.parent.parent / "train2017" / f"{i}.jpg")
                                                              for i in (1, 2, 3)]
    data = read_instances(out)  # no train2017/ beside it: the absolute file names are used
    assert data.class_names == ["person"] and len(data) == 3
    assert data.num_instances == 2 and data.info["crowd"] == 1
    # two classes, only the images holding one of them; category ids and names kept
    both = select_classes(coco, ["car", "person"], drop_empty=True)
    assert [c["name"] for c in both["categories"]] == ["person", "car"]
    assert [im["id"] for im in both["images"]] == [1, 2, 3] and len(both["annotations"]) == 5
    cars = select_classes(coco, ["car"], drop_empty=True)
    assert [im["id"] for im in cars["images"]] == [1, 2] and cars["info"]["selected"]["instances"] == 2
    # refusals in one line: an unknown name (the categories listed), an existing output
    assert main(["datasets", "instances", "select", str(coco), "--classes", "persn", "--output",
                 str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "--classes persn: not a category of" in err and "bicycle, car, person" in err
    assert "did you mean 'person'?" in err
    assert not (tmp_path / "x.json").exists()
    assert main(["datasets", "instances", "select", str(coco), "--classes", "car", "--output", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
