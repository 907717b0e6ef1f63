"""Where a COCO file's images are: the label-map layout (``instances.json`` beside ``images/`` and
``instances/``, whose PNGs share the images' names) reads ``images/``; two folders that both hold
the images are refused in one line naming both, and ``--images`` / ``images=`` chooses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from foveal.cli.main import main
from foveal.data.boxes.coco import read_coco
from foveal.errors import DataError
from foveal.instance.data import read_instances

from .conftest import save_unet_watershed, write_discs


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """ROOT/images/*.png, ROOT/instances/*.png (label maps, same names), ROOT/annotations/instances.json."""
    root = tmp_path_factory.mktemp("layout")
    made = write_discs(root, count=3)
    shutil.move(made, root / "annotations" / "instances.json")
    return root


def test_instances_json_beside_label_maps_reads_the_images(layout):
    for where in (layout / "annotations" / "instances.json", layout / "instances.json"):
        if not where.is_file():
            shutil.copy(layout / "annotations" / "instances.json", where)
        data = read_instances(where)
        assert {Path(p).parent for p in data.paths} == {layout / "images"}, where
        assert {Path(p).parent for p in read_coco(where).paths} == {layout / "images"}


def test_two_folders_holding_the_images_are_refused_in_one_line(layout, tmp_path):
    root = tmp_path / "twice"
    shutil.copytree(layout / "images", root / "images")
    shutil.copytree(layout / "images", root / "val2017")
    shutil.copy(layout / "annotations" / "instances.json", root / "instances_val2017.json")
    with pytest.raises(DataError) as err:
        read_instances(root / "instances_val2017.json")
    line = str(err.value)
    assert "\n" not in line and str(root / "val2017") in line and str(root / "images") in line
    assert "--images" in line
    chosen = read_instances(root / "instances_val2017.json", images=root / "val2017")
    assert {Path(p).parent for p in chosen.paths} == {root / "val2017"}
    # only one of them holding the files is not ambiguous: the one that holds them wins
    for f in (root / "val2017").iterdir():
        f.rename(root / "val2017" / f"other-{f.name}")
    assert {Path(p).parent for p in read_instances(root / "instances_val2017.json").paths} == {root / "images"}


def test_cli_evaluate_finds_the_images_or_names_both_folders(layout, tmp_path, capsys):
    model = save_unet_watershed(tmp_path / "unet.keras")
    coco = layout / "annotations" / "instances.json"
    assert main(["instance", "evaluate", str(model), "--data", str(coco), "--json"]) == 0
    assert "mask" in json.loads(capsys.readouterr().out)
    shutil.copytree(layout / "images", tmp_path / "val")
    shutil.copy(coco, tmp_path / "instances_val.json")
    shutil.copytree(layout / "images", tmp_path / "images")
    assert main(["instance", "evaluate", str(model), "--data", str(tmp_path / "instances_val.json")]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "--images" in err and len(err.strip().splitlines()) == 1
    assert main(["instance", "evaluate", str(model), "--data", str(tmp_path / "instances_val.json"), "--images",
                 str(tmp_path / "val"), "--json"]) == 0
