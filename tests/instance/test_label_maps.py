"""Instance label maps <-> COCO RLE, checked against pycocotools' own decoding and NumPy boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from foveal.errors import DataError, OutputError
from foveal.instance.label_maps import (
    coco_to_label_maps,
    label_map_annotations,
    label_maps_to_coco,
    read_label_map,
    split_instances,
    write_label_map,
)

from .conftest import voc_folder


def _maps() -> dict[str, np.ndarray]:
    a = np.zeros((20, 24), np.int64)
    a[2:8, 3:10] = 5  # ids need not be consecutive
    a[10:18, 12:22] = 9
    a[0, 23] = 9  # one id in two pieces stays one instance
    b = np.zeros((20, 24), np.int64)
    b[4:16, 4:16] = 300  # needs a 16-bit PNG
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    (root / "images").mkdir()
    for name, labels in _maps().items():
        Image.fromarray(np.full((*labels.shape, 3), 100, np.uint8)).save(root / "images" / f"{name}.jpg")
        write_label_map(root / "instances" / f"{name}.png", labels)
    return root


def _decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def test_folder_to_coco_and_back(folder, tmp_path):
    maps = _maps()
    coco = label_maps_to_coco(folder, class_names=["cell"])
    assert [im["file_name"] for im in coco["images"]] == ["a.jpg", "b.jpg"]
    assert coco["categories"] == [{"id": 1, "name": "cell", "supercategory": ""}]
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3] and all(a["iscrowd"] == 0 for a in anns)
    expected = [maps["a"] == 5, maps["a"] == 9, maps["b"] == 300]
    for ann, mask in zip(anns, expected):
        assert np.array_equal(_decode(ann["segmentation"]), mask)  # pycocotools decodes what we encoded
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == mask.sum()
    json.dumps(coco)  # RLE counts are strings: the dict is JSON as it is

    manifest = coco_to_label_maps(coco, tmp_path / "again", images=folder / "images")
    assert manifest["instances"] == 3 and manifest["overlap_pixels"] == 0
    again = label_maps_to_coco(tmp_path / "again", class_names=["cell"])
    assert [a["segmentation"] for a in again["annotations"]] == [a["segmentation"] for a in anns]
    assert read_label_map(tmp_path / "again" / "instances" / "b.png").max() == 1  # renumbered 1..N


def test_cityscapes_encoding_roundtrip(tmp_path):
    labels = np.zeros((16, 16), np.int64)
    labels[:4] = 7  # a class region without instances ("stuff")
    labels[5:9, 2:6] = 26000
    labels[5:9, 8:12] = 26001
    labels[10:15, 3:13] = 24000
    found, counts = split_instances(labels, "cityscapes")
    assert [(v, c) for v, c, _ in found] == [(24000, 24), (26000, 26), (26001, 26)]
    assert counts["non_instance_pixels"] == 64
    coco = {"images": [{"id": 1, "file_name": "x.png", "width": 16, "height": 16}],
            "annotations": label_map_annotations(labels, image_id=1, class_encoding="cityscapes"),
            "categories": [{"id": 24, "name": "person"}, {"id": 26, "name": "car"}]}
    coco_to_label_maps(coco, tmp_path / "out", class_encoding="cityscapes")
    back = read_label_map(tmp_path / "out" / "instances" / "x.png")
    assert np.array_equal(back, np.where(labels >= 1000, labels, 0))
    with pytest.raises(DataError, match="cannot be told apart"):
        coco_to_label_maps(coco, tmp_path / "single")


def test_min_area_and_classes(folder):
    coco = label_maps_to_coco(folder, min_area=50)
    assert coco["info"]["small"] == 1 and len(coco["annotations"]) == 2  # 5: 42 px dropped
    assert coco["categories"][0]["name"] == "object"
    with pytest.raises(DataError, match="one class, not 2"):
        label_maps_to_coco(folder, class_names=["a", "b"])


def test_bad_label_maps_are_named(tmp_path):
    root = tmp_path / "bad"
    (root / "images").mkdir(parents=True)
    (root / "instances").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "rgb.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "instances" / "rgb.png")
    with pytest.raises(DataError, match=r"instances/rgb\.png: mode RGB is not an instance label map") as info:
        label_maps_to_coco(root)
    assert "\n" not in info.value.message
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(root / "instances" / "rgb.png")
    with pytest.raises(DataError, match=r"rgb\.png: size 9x8 differs from its image .*rgb\.png \(8x8\)"):
        label_maps_to_coco(root)
    Image.fromarray(np.ones((8, 8), np.uint8)).save(root / "instances" / "alone.png")
    with pytest.raises(DataError, match=r"alone\.png has no image"):
        label_maps_to_coco(root)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / "ok.png")
    Image.fromarray(np.eye(8, dtype=np.uint8)).save(root / "instances" / "ok.png")
    coco = label_maps_to_coco(root, skip_invalid=True)  # both problems listed, the good pair read
    assert [im["file_name"] for im in coco["images"]] == ["ok.png"] and len(coco["info"]["skipped"]) == 2


def test_bad_coco_annotations_are_named(tmp_path):
    image = {"id": 3, "file_name": "p.png", "width": 10, "height": 10}
    empty = {"images": [image], "categories": [{"id": 1, "name": "x"}],
             "annotations": [{"id": 41, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 1, 1, 1, 1]]}]}
    with pytest.raises(DataError, match="annotation 41 of image 'p.png' has an empty mask"):
        coco_to_label_maps(empty, tmp_path / "a")
    assert coco_to_label_maps(empty, tmp_path / "b", skip_invalid=True)["skipped"]
    short = empty | {"annotations": [{"id": 42, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 5, 5]]}]}
    with pytest.raises(DataError, match="annotation 42: a polygon needs at least three points"):
        coco_to_label_maps(short, tmp_path / "c")
    sized = empty | {"annotations": [{"id": 43, "image_id": 3, "category_id": 1,
                                      "segmentation": {"size": [9, 10], "counts": "abc"}}]}
    with pytest.raises(DataError, match=r"annotation 43: RLE size \[9, 10\] differs"):
        coco_to_label_maps(sized, tmp_path / "d")
    with pytest.raises(OutputError, match="not empty"):
        coco_to_label_maps(empty, tmp_path / "b", skip_invalid=True)


def test_cityscapes_folder_and_palette_maps(tmp_path):
    root = tmp_path / "city"
    (root / "images").mkdir(parents=True)
    labels = np.zeros((12, 12), np.int64)
    labels[:3] = 7
    labels[4:8, 1:5] = 26000
    labels[4:8, 6:10] = 24001
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "images" / "c.png")
    write_label_map(root / "instances" / "c.png", labels)
    coco = label_maps_to_coco(root, class_encoding="cityscapes", class_names={24: "person", 26: "car"})
    assert coco["categories"] == [{"id": 24, "name": "person", "supercategory": ""},
                                  {"id": 26, "name": "car", "supercategory": ""}]
    assert [a["category_id"] for a in coco["annotations"]] == [24, 26] and coco["info"]["non_instance_pixels"] == 36
    assert [c["name"] for c in label_maps_to_coco(root, class_encoding="cityscapes")["categories"]] == \
        ["class_24", "class_26"]
    with pytest.raises(DataError, match=r"c\.png: class id 24 .* not among the given classes \[26\]"):
        label_maps_to_coco(root, class_encoding="cityscapes", class_names={26: "car"})

    palette = Image.fromarray(np.array([[0, 3], [3, 9]], np.uint8), mode="P")  # palette index = instance id
    palette.putpalette([v for k in range(256) for v in (k, 255 - k, 0)])
    palette.save(tmp_path / "p.png")
    assert read_label_map(tmp_path / "p.png").tolist() == [[0, 3], [3, 9]]


def test_voc_segmentation_object_pngs_leave_the_void_outlines_out(tmp_path, capsys):
    """Pascal VOC's SegmentationObject PNGs: palette index = instance, 255 = void (the outline
    round each object); 'voc' reads the objects without the outlines, 'single' takes 255 as one more."""
    from foveal.cli.main import main

    root, labels = voc_folder(tmp_path / "VOC")
    folders = dict(images="JPEGImages", instances="SegmentationObject")
    assert len(label_maps_to_coco(root, **folders)["annotations"]) == 3
    coco = label_maps_to_coco(root, class_encoding="voc", class_names=["object"], **folders)
    assert [a["bbox"] for a in coco["annotations"]] == [[2.0, 2.0, 8.0, 6.0], [12.0, 10.0, 10.0, 8.0]]
    assert coco["info"]["non_instance_pixels"] == int((labels == 255).sum())
    out = tmp_path / "voc.json"
    assert main(["datasets", "instances", "to-coco", str(root), "--output", str(out), "--class-encoding", "voc",
                 "--images-folder", "JPEGImages", "--instances-folder", "SegmentationObject"]) == 0
    assert len(json.loads(out.read_text())["annotations"]) == 2
    # each object's class from SegmentationClass (VOC's class indices: 12 dog, 15 person), by majority
    (root / "SegmentationClass").mkdir()
    classes = np.where(labels == 1, 15, np.where(labels == 2, 12, labels)).astype(np.uint8)
    classes[10, 12] = 15  # a stray pixel does not change the dog's class
    Image.fromarray(classes).save(root / "SegmentationClass" / "2007_000032.png")
    coco = label_maps_to_coco(root, class_encoding="voc", class_maps="SegmentationClass", **folders)
    assert [a["category_id"] for a in coco["annotations"]] == [15, 12]
    assert [c["name"] for c in coco["categories"]] == ["class_12", "class_15"]
    names = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person"]
    assert main(["datasets", "instances", "to-coco", str(root), "--output", str(out), "--class-encoding", "voc",
                 "--images-folder", "JPEGImages", "--instances-folder", "SegmentationObject", "--class-maps",
                 "SegmentationClass", "--classes", *names]) == 0
    written = json.loads(out.read_text())
    assert [written["categories"][a["category_id"] - 1]["name"] for a in written["annotations"]] == ["person", "dog"]
    classes[2:8, 2:10] = 0
    Image.fromarray(classes).save(root / "SegmentationClass" / "2007_000032.png")
    with pytest.raises(DataError, match=r"SegmentationClass/2007_000032\.png: object 1 has no class pixels"):
        label_maps_to_coco(root, class_encoding="voc", class_maps="SegmentationClass", **folders)
