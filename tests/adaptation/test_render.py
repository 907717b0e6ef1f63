"""Rendered meshes: every mask against the silhouette its pose projects, determinism, colours, bad meshes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

# Skipped without the renderer's libraries; found, not imported: importing trimesh at collection cost
# every xdist worker about half a second of the default tier's start-up, for this file's six tests.
pytestmark = [pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                 reason=f"rendering needs {name} (pip install 'foveal[render]')")
              for name in ("trimesh", "moderngl")]

from foveal.data.synth.render import load_mesh, make_renders  # noqa: E402
from foveal.errors import ConfigError, DataError  # noqa: E402

if TYPE_CHECKING:
    import trimesh

SIZE = (96, 112)  # not square: the projection's x and y are checked apart


def write_meshes(root: Path) -> dict[str, trimesh.Trimesh]:
    """A blue-textured box (OBJ + MTL + PNG), a green vertex-coloured sphere (PLY), a red-textured
    cylinder (GLB)."""
    import trimesh
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    box.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(0).random((len(box.vertices), 2)),
                                               image=Image.new("RGB", (4, 4), (30, 30, 220)))
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
    sphere.visual.vertex_colors = np.tile([30, 200, 40, 255], (len(sphere.vertices), 1))
    cylinder = trimesh.creation.cylinder(radius=0.5, height=1.2, sections=24)
    cylinder.apply_translation([2.0, -1.0, 0.5])  # not at the origin: the pose must carry the offset
    cylinder.visual = trimesh.visual.TextureVisuals(uv=np.full((len(cylinder.vertices), 2), 0.5),
                                                    image=Image.new("RGB", (4, 4), (220, 30, 30)))
    box.export(root / "box.obj")
    sphere.export(root / "sphere.ply")
    cylinder.export(root / "cylinder.glb")
    return {"box": box, "sphere": sphere, "cylinder": cylinder}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    import contextlib
    import io

    from foveal.cli.main import main

    root = tmp_path_factory.mktemp("render")
    meshes = write_meshes(root / "meshes")
    # through the CLI (the same options as the API call of the determinism test)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["datasets", "synth", "render", "--meshes", str(root / "meshes"), "--output", str(root / "a"),
                     "--count", "9", "--size", str(SIZE[0]), str(SIZE[1]), "--objects-per-image", "1", "1",
                     "--distance", "3", "5", "--noise", "0", "--blur", "0", "--jitter", "0", "--seed", "5",
                     "--depth", "png"])
    if code == 2 and "OpenGL" in err.getvalue():  # the message names the missing library (libEGL, Mesa's drivers)
        pytest.skip(f"no headless OpenGL context: {err.getvalue().strip()}")
    assert code == 0, err.getvalue()
    manifest = json.loads((root / "a" / "render.json").read_text())
    return root, meshes, manifest


def test_masks_match_the_projected_geometry_and_poses_are_rotations(rendered):
    """A convex mesh's silhouette is the convex hull of its projected vertices: sample that hull
    (SciPy's hull, Matplotlib's point-in-polygon) at the pixel centres from the written pose and
    camera, and compare it with the written mask. Half a pixel off gives an IoU near 0.97."""
    from matplotlib.path import Path as Polygon
    from pycocotools import mask as mask_utils
    from scipy.spatial import ConvexHull

    root, meshes, manifest = rendered
    coco = json.loads((root / "a" / "annotations" / "instances_train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(names.values()) == ["box", "cylinder", "sphere"] and manifest["instances"] == 9
    images = {im["id"]: im for im in coco["images"]}
    ys, xs = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
    seen = set()
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        K = np.array(image["camera_K"])
        R, t, scale = np.array(ann["pose"]["R"]), np.array(ann["pose"]["t"]), ann["pose"]["scale"]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-6)
        mesh = meshes[names[ann["category_id"]]]
        cam = scale * np.asarray(mesh.vertices) @ R.T + t
        assert (cam[:, 2] > 0).all()
        uv = cam @ K.T
        uv = uv[:, :2] / uv[:, 2:]
        hull = Polygon(uv[ConvexHull(uv).vertices])
        expected = hull.contains_points(centres).reshape(SIZE)
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        assert mask.shape == SIZE and image["height"], image["width"] == SIZE
        iou = (mask & expected).sum() / (mask | expected).sum()
        assert iou > 0.995, (names[ann["category_id"]], iou)
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        seen.add(names[ann["category_id"]])
    assert seen == {"box", "sphere", "cylinder"}


def test_renders_are_deterministic_coloured_and_readable(rendered, tmp_path):
    """The same seed through the API in a child process (the path taken after TensorFlow is
    imported) writes the same bytes (images, annotations, depth maps) as the CLI did; textures and vertex colours reach the pixels;
    the box reader reads the result."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from foveal.data.boxes import load_boxes
    from foveal.data.synth.render import _render_in_child

    root, _, manifest = rendered
    options = dict(count=9, size=list(SIZE), objects_per_image=[1, 1], distance=[3.0, 5.0], noise=0.0, blur=0.0,
                   jitter=0.0, seed=5, depth="png")
    _render_in_child([str(root / "meshes")], str(tmp_path / "b"), options, None)
    assert len(list((root / "a" / "depth" / "train").glob("*.png"))) == 9
    for f in sorted((root / "a").rglob("*.*")):
        if f.name != "render.json":
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(root / "a")).read_bytes(), f
    coco = json.loads((root / "a" / "annotations" / "instances_train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for ann in coco["annotations"]:
        pixels = np.asarray(Image.open(root / "a" / "train" / f"{ann['image_id'] - 1:06d}.jpg")).astype(float)
        r, g, b = pixels[mask_utils.decode(ann["segmentation"]).astype(bool)].mean(axis=0)
        name = names[ann["category_id"]]
        if name == "sphere":
            assert g > 1.5 * max(r, b), (name, r, g, b)
        elif name == "cylinder":
            assert r > 1.5 * max(g, b), (name, r, g, b)
        else:
            assert b > 1.5 * max(r, g), (name, r, g, b)
    boxes = load_boxes(root / "a" / "annotations" / "instances_train.json")
    assert len(boxes["train"]) == 9 and sorted(boxes["train"].class_names) == ["box", "cylinder", "sphere"]


def test_bad_meshes_are_named(tmp_path):
    import trimesh

    (tmp_path / "points.ply").write_bytes(b"")
    trimesh.PointCloud(np.random.default_rng(0).random((10, 3))).export(tmp_path / "points.ply")
    with pytest.raises(DataError, match=r"points\.ply: the mesh has no faces"):
        load_mesh(tmp_path / "points.ply")
    (tmp_path / "broken.glb").write_bytes(b"not a glb file at all")
    with pytest.raises(DataError, match=r"broken\.glb: cannot load this mesh"):
        load_mesh(tmp_path / "broken.glb")
    (tmp_path / "mug.obj").write_text("mtllib mug.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (tmp_path / "mug.mtl").write_text("newmtl a\nKd 1 1 1\nmap_Kd textures/mug.png\n")
    with pytest.raises(DataError, match=r"mug\.obj: names a missing file .*mug\.png"):
        load_mesh(tmp_path / "mug.obj")
    with pytest.raises(DataError, match=r"nothing\.obj: no such mesh file"):
        make_renders([tmp_path / "nothing.obj"], tmp_path / "out")
    with pytest.raises(ConfigError, match=r"--depth png: the farthest surface \(81 units.* does not fit in 16 bits"):
        make_renders([tmp_path / "nothing.obj"], tmp_path / "out", depth="png", distance=(3.0, 80.0))
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def layered(rendered, tmp_path_factory):
    """2-3 meshes per image, close together (occlusions), with amodal masks and float32 depth maps."""
    root, meshes, _ = rendered
    out = tmp_path_factory.mktemp("layers")
    options = dict(count=6, size=SIZE, objects_per_image=(2, 3), distance=(3.0, 4.0), noise=0.0, blur=0.0,
                   jitter=0.0, min_visible=0.0, seed=3)
    manifest = make_renders([root / "meshes"], out / "npy", depth="npy", **options)
    coco = json.loads((out / "npy" / "annotations" / "instances_train.json").read_text())
    return out, meshes, manifest, coco


def _silhouette(mesh, ann, K):
    """The convex mesh's silhouette from its pose: its projected vertices' hull at the pixel centres."""
    from matplotlib.path import Path as Polygon
    from scipy.spatial import ConvexHull

    R, t, scale = np.array(ann["pose"]["R"]), np.array(ann["pose"]["t"]), ann["pose"]["scale"]
    uv = (scale * np.asarray(mesh.vertices) @ R.T + t) @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    ys, xs = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    return Polygon(uv[ConvexHull(uv).vertices]).contains_points(np.stack([xs.ravel(), ys.ravel()], 1)).reshape(SIZE)


def test_amodal_masks_are_whole_silhouettes_and_contain_the_visible_masks(layered):
    """Each amodal mask equals the object's silhouette as if drawn alone (the hull of its
    projected vertices, occluders ignored), the visible mask is a subset of it, the occlusion
    ratio is 1 - visible / amodal; and some objects are occluded, so the two masks differ."""
    from pycocotools import mask as mask_utils

    _, meshes, manifest, coco = layered
    names = {c["id"]: c["name"] for c in coco["categories"]}
    images = {im["id"]: im for im in coco["images"]}
    assert manifest["amodal"] and "amodal_segmentation" in coco["info"]["amodal"]
    occluded = 0
    for ann in coco["annotations"]:
        visible = mask_utils.decode(ann["segmentation"]).astype(bool)
        amodal = mask_utils.decode(ann["amodal_segmentation"]).astype(bool)
        expected = _silhouette(meshes[names[ann["category_id"]]], ann, np.array(images[ann["image_id"]]["camera_K"]))
        iou = (amodal & expected).sum() / (amodal | expected).sum()
        assert iou > 0.995, (names[ann["category_id"]], iou)
        assert not (visible & ~amodal).any()
        assert ann["amodal_area"] == amodal.sum()
        assert ann["occlusion"] == pytest.approx(1 - visible.sum() / amodal.sum(), abs=1e-6)
        ys, xs = np.nonzero(amodal)
        assert ann["amodal_bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        occluded += ann["occlusion"] > 0.1
    assert occluded >= 2, "the scenes should have occluded objects"


def test_depth_maps_equal_the_distance_to_the_geometry(layered):
    """At every visible pixel of a box, the depth map holds the z of the ray's first hit on the
    box (a ray-slab intersection in NumPy from the written pose and camera) to 1%; background
    pixels hold 0; written as 16-bit PNG, the depths come back * 1000, rounded."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from foveal.data.synth.render import _write_depth

    out, meshes, manifest, coco = layered
    names = {c["id"]: c["name"] for c in coco["categories"]}
    half = np.asarray(meshes["box"].extents) / 2
    checked = 0
    for image in coco["images"]:
        z = np.load(out / "npy" / image["depth_file"])
        assert z.dtype == np.float32 and z.shape == SIZE and image["depth_scale"] == 1.0
        record = _write_depth(z, out, f"{image['id']}.png", 1000.0)
        counts = np.asarray(Image.open(out / record["depth_file"]))
        assert counts.dtype == np.uint16 and record["depth_scale"] == pytest.approx(0.001)
        np.testing.assert_allclose(counts * record["depth_scale"], z, atol=0.0006)
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        covered = np.zeros(SIZE, bool)
        for ann in anns:
            covered |= mask_utils.decode(ann["amodal_segmentation"]).astype(bool)
        assert (z[~covered] == 0).all() and (z[covered] > 0).all()
        K_inv = np.linalg.inv(np.array(image["camera_K"]))
        for ann in anns:
            if names[ann["category_id"]] != "box":
                continue
            ys, xs = np.nonzero(mask_utils.decode(ann["segmentation"]))
            rays = np.stack([xs, ys, np.ones_like(xs)], 1) @ K_inv.T  # z = 1 on each ray
            R, t, scale = np.array(ann["pose"]["R"]), np.array(ann["pose"]["t"]), ann["pose"]["scale"]
            a, b = rays @ R / scale, -(R.T @ t) / scale  # the ray in the box's frame: b + z * a
            with np.errstate(divide="ignore"):
                lo, hi = (-half - b) / a, (half - b) / a
            near = np.minimum(lo, hi).max(axis=1)
            np.testing.assert_allclose(z[ys, xs], near, rtol=0.01)
            checked += len(xs)
    assert checked > 500
