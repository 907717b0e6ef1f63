"""Rendered detection/segmentation/pose datasets: 3D meshes drawn headless at random poses.

Planche & Andres, *Hands-On Computer Vision with TensorFlow 2*, chapter 7: when real labelled
images are scarce, render the objects' 3D models at random poses, distances and lights over
random backgrounds; every pixel's object, every box and every pose is then known exactly
(Hinterstoisser et al., "On Pre-Trained Image Features and Synthetic Images for Deep Learning",
2018; Tobin et al., "Domain Randomization", IROS 2017).

:func:`make_renders` loads meshes with trimesh (OBJ with its MTL and textures, PLY, GLB/glTF,
STL, OFF...: every part of a scene with its transform, vertex colours, material colours and
base-colour textures), and draws them with moderngl on a standalone EGL context, which needs no
display: Mesa's llvmpipe software rasteriser on a CPU machine, the GPU's driver elsewhere
(docs/architecture.md has the measured speed against pyrender). Per image it draws 1 to N
meshes, each rotated uniformly at random, at a random distance (in units of the mesh's
bounding-sphere radius) and image position, lit by an ambient term plus one directional light
of random direction, strength and tint, over a random crop of a background photo (or a random
flat colour), then adds the composite command's post-processing (colour jitter, blur, noise).

Written: ``OUTPUT/SPLIT/*.jpg`` and ``OUTPUT/annotations/instances_SPLIT.json`` in COCO form:
boxes and RLE masks of the *visible* pixels (from an object-id pass with the depth test, not
antialiased), one category per mesh file (its file name without suffix), and per object its
``pose``: ``X_cam = scale * R @ X + t`` maps the mesh file's coordinates X into the camera
frame of OpenCV (x right, y down, z forward), whose intrinsics ``K`` each image record holds
(pixel centres at integer coordinates), so ``K @ X_cam`` projects a vertex onto the image.

Amodal masks (on by default): COCO has no field for them, so foveal adds its own to each
annotation: ``amodal_segmentation`` (RLE of the object's whole silhouette, drawn alone, occluded
parts included, cut to the frame), ``amodal_bbox``, ``amodal_area`` and ``occlusion`` (1 - visible
area / amodal area); COCO readers ignore them. Depth maps (``depth="png"`` or ``"npy"``): one per
image in ``OUTPUT/depth/SPLIT/``, named by the image record's ``depth_file`` (relative to
OUTPUT) and ``depth_scale`` (z = value * depth_scale): the camera-frame z (along the optical
axis) of the nearest surface at each pixel centre, 0 where no object is, read from the id
pass's depth buffer and linearised with the frame's near and far planes. Its unit is that of
the poses' ``t``: every mesh is scaled to a bounding sphere of radius 1, so a unit is one
bounding-sphere radius (a 16-bit PNG stores ``round(z * 1000)`` by default: millimetres if a
unit were a metre).

Deterministic for a seed (the same images byte for byte on one machine and Mesa version).

Example:
    >>> make_renders(["models/mug.glb", "models/duck.obj"], "render/", backgrounds="photos/",  # doctest: +SKIP
    ...              count=200, size=(256, 256), seed=0)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from foveal.errors import ConfigError, DataError, OutputError, require_all
from foveal.utils_io import printable_path, refuse_nonempty_output, staged_folder

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")

_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat4 model_view;
in vec3 in_position;
in vec3 in_normal;
in vec2 in_uv;
in vec4 in_color;
out vec3 v_normal;
out vec2 v_uv;
out vec4 v_color;
void main() {
    gl_Position = mvp * vec4(in_position, 1.0);
    v_normal = mat3(model_view) * in_normal;
    v_uv = in_uv;
    v_color = in_color;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform sampler2D base_texture;
uniform bool textured;
uniform bool id_pass;
uniform float object_id;
uniform vec3 light_direction;
uniform vec3 light_color;
uniform float ambient;
in vec3 v_normal;
in vec2 v_uv;
in vec4 v_color;
out vec4 f_color;
void main() {
    if (id_pass) { f_color = vec4(object_id / 255.0, 0.0, 0.0, 1.0); return; }
    vec4 base = v_color;
    if (textured) base *= texture(base_texture, v_uv);
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    float diffuse = max(dot(n, light_direction), 0.0);
    f_color = vec4(base.rgb * (ambient + diffuse * light_color), 1.0);
}
"""


@dataclass
class MeshPart:
    """One drawable piece of a mesh file: a triangle soup (3 vertices per face, in the file's
    coordinates) with normals, texture coordinates, RGBA colours and an optional texture."""

    positions: np.ndarray  # (3F, 3) float32
    normals: np.ndarray  # (3F, 3) float32
    uv: np.ndarray  # (3F, 2) float32
    colors: np.ndarray  # (3F, 4) float32 in [0, 1]
    texture: np.ndarray | None = None  # (H, W, 4) uint8, top row first


@dataclass
class Mesh:
    """A mesh file's parts, its bounding-sphere centre and radius and its category name."""

    name: str
    path: str
    parts: list[MeshPart]
    center: np.ndarray
    radius: float
    faces: int = 0
    vertices: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def _missing_obj_files(path: Path) -> list[Path]:
    """The MTL libraries and texture maps an OBJ file names that do not exist (trimesh only warns)."""
    missing: list[Path] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return missing
    for library in re.findall(r"^\s*mtllib\s+(.+?)\s*$", text, flags=re.M):
        mtl = path.parent / library
        if not mtl.is_file():
            missing.append(mtl)
            continue
        for line in mtl.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].lower().startswith("map_"):
                texture = mtl.parent / words[-1]
                if not texture.is_file():
                    missing.append(texture)
    return missing


def _part_arrays(geometry: Any) -> MeshPart:
    """A trimesh.Trimesh as a triangle soup with flat normals at creases sharper than 30 degrees."""
    faces = np.asarray(geometry.faces)
    vertices = np.asarray(geometry.vertices, np.float64)
    positions = vertices[faces].reshape(-1, 3)
    face_normals = np.repeat(np.asarray(geometry.face_normals, np.float64), 3, axis=0)
    vertex_normals = np.asarray(geometry.vertex_normals, np.float64)[faces].reshape(-1, 3)
    smooth = np.sum(vertex_normals * face_normals, axis=1, keepdims=True) > np.cos(np.radians(30))
    normals = np.where(smooth, vertex_normals, face_normals)
    uv = np.zeros((len(positions), 2))
    colors = np.full((len(positions), 4), 0.7)
    colors[:, 3] = 1.0
    texture = None
    visual = geometry.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        material = visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        factor = getattr(material, "baseColorFactor", None)
        if factor is None:
            factor = getattr(material, "diffuse", None)
        if factor is not None:
            colors[:] = np.asarray(factor, np.float64)[:4] / 255.0
        if image is not None and visual.uv is not None and len(visual.uv) == len(vertices):
            uv = np.asarray(visual.uv, np.float64)[faces].reshape(-1, 2)
            texture = np.asarray(image.convert("RGBA"))
            if factor is None or getattr(material, "baseColorTexture", None) is None:
                colors[:] = 1.0  # an OBJ's Kd multiplies its map_Kd in trimesh's SimpleMaterial; keep the map's colours
    elif kind == "vertex":
        colors = np.asarray(visual.vertex_colors, np.float64)[faces].reshape(-1, 4) / 255.0
    elif kind == "face":
        colors = np.repeat(np.asarray(visual.face_colors, np.float64), 3, axis=0) / 255.0
    return MeshPart(positions.astype(np.float32), normals.astype(np.float32), uv.astype(np.float32),
                    colors.astype(np.float32), texture)


def load_mesh(path: str | Path) -> Mesh:
    """Load a mesh file (every part of a scene, with its transform) for :func:`make_renders`.

    Raises:
        DataError: the file is missing or cannot be parsed, has no triangles, or names an MTL
            file or texture that does not exist (each named).
    """
    import trimesh

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{printable_path(file)}: no such mesh file", hint=f"--meshes takes {', '.join(MESH_SUFFIXES)} "
                        "files or folders of them")
    if file.suffix.lower() == ".obj":
        missing = _missing_obj_files(file)
        if missing:
            raise DataError(f"{printable_path(file)}: names a missing file {printable_path(missing[0])}",
                            hint="put the MTL file and its textures beside the OBJ, or remove the mtllib/map_ line")
    try:
        scene = trimesh.load(str(file), force="scene")
        geometries = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    except Exception as exc:  # trimesh raises many types (ValueError, KeyError, struct.error...)
        raise DataError(f"{printable_path(file)}: cannot load this mesh ({type(exc).__name__}: {exc})",
                        hint="check that it is a valid OBJ/PLY/GLB/glTF/STL/OFF file") from None
    if not geometries:
        raise DataError(f"{printable_path(file)}: the mesh has no faces (a point cloud or an empty scene?)",
                        hint="render needs triangle meshes")
    parts = [_part_arrays(g) for g in geometries]
    vertices = np.concatenate([np.asarray(g.vertices, np.float64) for g in geometries])
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    center = (low + high) / 2
    radius = float(np.linalg.norm(vertices - center, axis=1).max())
    if not np.isfinite(radius) or radius <= 0:
        raise DataError(f"{printable_path(file)}: the mesh is degenerate (all vertices at one point)")
    return Mesh(file.stem, printable_path(file), parts, center, radius,
                sum(len(g.faces) for g in geometries), vertices)


def mesh_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The mesh files named by ``inputs`` (files, or folders searched recursively), sorted per input."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"{printable_path(path)}: no mesh files ({', '.join(MESH_SUFFIXES)}) in this folder")
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise ConfigError("--meshes needs at least one mesh file or folder")
    return files


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (a normalised 4-D Gaussian is a uniform unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def open_context() -> Any:
    """A standalone (windowless) OpenGL 3.3 context on EGL.

    Raises:
        ConfigError: moderngl is not installed, or no EGL driver could be opened.
    """
    try:
        import moderngl
    except ImportError:
        raise ConfigError("rendering needs moderngl and trimesh", hint="pip install 'foveal[render]'") from None
    try:
        return moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as exc:  # glcontext raises plain Exception
        raise ConfigError(f"cannot open a headless OpenGL context through EGL ({exc})",
                          hint="install the EGL library and Mesa's drivers (Debian: apt-get install libegl1 "
                          "libgl1-mesa-dri), or run on a machine with a GPU driver") from None


class Renderer:
    """Draws :class:`Mesh` objects with moderngl into an offscreen framebuffer of one size.

    ``samples`` > 1 antialiases the colour image (multisampling); the object-id image that gives
    the masks is always drawn with one sample, so a mask pixel is an object's exactly when the
    pixel's centre is covered by it.
    """

    def __init__(self, size: tuple[int, int], samples: int = 4, context: Any = None):
        self.ctx = context or open_context()
        self.height, self.width = size
        self.program = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        wh = (self.width, self.height)
        samples = max(0, min(int(samples), self.ctx.max_samples)) if samples > 1 else 0
        self.color_fbo = self.ctx.framebuffer(self.ctx.renderbuffer(wh, 4, samples=samples),
                                              self.ctx.depth_renderbuffer(wh, samples=samples))
        self.resolve_fbo = (self.ctx.framebuffer(self.ctx.renderbuffer(wh, 4)) if samples else self.color_fbo)
        self.id_fbo = self.ctx.framebuffer(self.ctx.renderbuffer(wh, 4), self.ctx.depth_renderbuffer(wh))
        self.near, self.far = 0.1, 100.0  # the clip planes of the last frame, set per frame by _prepare
        self._vaos: dict[int, list[tuple[Any, Any]]] = {}

    def _parts(self, mesh: Mesh) -> list[tuple[Any, Any]]:
        key = id(mesh)
        if key not in self._vaos:
            built = []
            for part in mesh.parts:
                data = np.hstack([part.positions, part.normals, part.uv, part.colors]).astype("f4")
                vbo = self.ctx.buffer(data.tobytes())
                vao = self.ctx.vertex_array(self.program, [(vbo, "3f 3f 2f 4f", "in_position", "in_normal", "in_uv",
                                                            "in_color")])
                texture = None
                if part.texture is not None:
                    image = np.ascontiguousarray(part.texture[::-1])  # OpenGL's first row is v = 0 (the bottom)
                    texture = self.ctx.texture((image.shape[1], image.shape[0]), 4, image.tobytes())
                    texture.build_mipmaps()
                    texture.repeat_x = texture.repeat_y = True
                built.append((vao, texture))
            self._vaos[key] = built
        return self._vaos[key]

    def projection(self, K: np.ndarray, near: float, far: float) -> np.ndarray:
        """The OpenGL projection matching OpenCV intrinsics ``K`` (pixel centres at integers)."""
        w, h = self.width, self.height
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        return np.array([[2 * fx / w, 0, 1 - 2 * (cx + 0.5) / w, 0],
                         [0, 2 * fy / h, 1 - 2 * (cy + 0.5) / h, 0],
                         [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
                         [0, 0, -1, 0]])

    def _prepare(self, objects: Sequence[tuple[Mesh, np.ndarray]], K: np.ndarray, light_direction: np.ndarray,
                 light_color: np.ndarray, ambient: float) -> np.ndarray:
        import moderngl

        depths = [-float(mv[2, 3]) for _, mv in objects]
        near = max(1e-3, min(d - m.radius * _scale(mv) for d, (m, mv) in zip(depths, objects)) * 0.5)
        far = max(d + m.radius * _scale(mv) for d, (m, mv) in zip(depths, objects)) * 2.0
        self.near, self.far = near, far
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)
        prog = self.program
        prog["light_direction"].value = tuple(float(v) for v in light_direction)
        prog["light_color"].value = tuple(float(v) for v in light_color)
        prog["ambient"].value = float(ambient)
        return self.projection(K, near, far)

    def _draw(self, fbo: Any, ids: bool, objects: Sequence[tuple[Mesh, np.ndarray]], which: Sequence[int],
              proj: np.ndarray) -> None:
        import moderngl

        prog = self.program
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        prog["id_pass"].value = ids
        for k in which:
            mesh, model_view = objects[k]
            prog["mvp"].write((proj @ model_view).T.astype("f4").tobytes())
            prog["model_view"].write(model_view.T.astype("f4").tobytes())
            prog["object_id"].value = float(k + 1)
            for vao, texture in self._parts(mesh):
                prog["textured"].value = texture is not None
                if texture is not None:
                    texture.use(0)
                    prog["base_texture"].value = 0
                vao.render(moderngl.TRIANGLES)

    def render_color(self, objects: Sequence[tuple[Mesh, np.ndarray]], K: np.ndarray, *, light_direction: np.ndarray,
                     light_color: np.ndarray, ambient: float) -> np.ndarray:
        """Only the colour pass of :meth:`render`: RGBA uint8, alpha covering the objects."""
        proj = self._prepare(objects, K, light_direction, light_color, ambient)
        self._draw(self.color_fbo, False, objects, range(len(objects)), proj)
        if self.resolve_fbo is not self.color_fbo:
            self.ctx.copy_framebuffer(self.resolve_fbo, self.color_fbo)
        raw = np.frombuffer(self.resolve_fbo.read(components=4), np.uint8)
        return raw.reshape(self.height, self.width, 4)[::-1].copy()

    def render(self, objects: Sequence[tuple[Mesh, np.ndarray]], K: np.ndarray, *, light_direction: np.ndarray,
               light_color: np.ndarray, ambient: float, solo_masks: bool = True, depth: bool = False
               ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray | None]:
        """Draw ``objects`` ((mesh, 4x4 model-view in OpenGL's camera frame) pairs) lit by an
        ambient term and one directional light (``light_direction`` points towards the light, in
        OpenGL's camera frame).

        Returns:
            (RGBA uint8 image whose alpha covers the objects, (H, W) int32 visible-object index
            (0: background, k: the k-th object), the full silhouette of each object drawn alone,
            occluded parts included: its amodal mask inside the frame (bool; empty when
            ``solo_masks`` is False), and with ``depth`` the (H, W) float32 depth map of the
            id pass: the camera-frame z (distance along the optical axis, not along the ray) of
            the nearest surface at each pixel centre, 0 where no object is; else None).
        """
        rgba = self.render_color(objects, K, light_direction=light_direction, light_color=light_color, ambient=ambient)
        proj = self._prepare(objects, K, light_direction, light_color, ambient)
        everyone = range(len(objects))
        self._draw(self.id_fbo, True, objects, everyone, proj)
        owner = self._read_ids()
        z = self._read_depth() if depth else None
        solos = []
        if solo_masks and len(objects) == 1:
            solos.append(owner == 1)
        elif solo_masks:
            for k in everyone:
                self._draw(self.id_fbo, True, objects, [k], proj)
                solos.append(self._read_ids() == k + 1)
        return rgba, owner, solos, z

    def _read_depth(self) -> np.ndarray:
        """The id pass's depth buffer, linearised with this frame's near and far planes.

        The window depth d in [0, 1] of a perspective projection is d = (z_ndc + 1) / 2 with
        z_ndc = (f + n) / (f - n) - 2 f n / ((f - n) z), so z = 2 f n / (f + n - z_ndc (f - n))
        (the inverse of :meth:`projection`'s third and fourth rows); d = 1 is the cleared
        background, written as 0.
        """
        raw = np.frombuffer(self.id_fbo.read(components=1, attachment=-1, dtype="f4"), np.float32)
        d = raw.reshape(self.height, self.width)[::-1].astype(np.float64)
        n, f = self.near, self.far
        z = 2 * f * n / (f + n - (2 * d - 1) * (f - n))
        return np.where(d < 1.0, z, 0.0).astype(np.float32)

    def _read_ids(self) -> np.ndarray:
        raw = np.frombuffer(self.id_fbo.read(components=4), np.uint8).reshape(self.height, self.width, 4)
        return raw[::-1, :, 0].astype(np.int32)

    def release(self) -> None:
        """Free the context's objects (the context itself is released with it)."""
        self.ctx.release()


def _scale(model_view: np.ndarray) -> float:
    return float(np.linalg.norm(model_view[:3, 0]))


_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def intrinsics(size: tuple[int, int], fov: float) -> np.ndarray:
    """OpenCV camera matrix of a centred pinhole camera with vertical field of view ``fov`` degrees."""
    h, w = size
    f = (h / 2) / np.tan(np.radians(fov) / 2)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def make_renders(meshes: Sequence[str | Path], output: str | Path, *, backgrounds: str | Path | None = None,
                 count: int = 100, size: tuple[int, int] = (256, 256), objects_per_image: tuple[int, int] = (1, 3),
                 distance: tuple[float, float] = (3.0, 8.0), fov: float = 50.0, ambient: tuple[float, float] = (0.2, 0.5),
                 light: tuple[float, float] = (0.5, 1.2), min_visible: float = 0.3, samples: int = 4,
                 noise: float = 2.0, blur: float = 0.5, jitter: float = 0.1, split: str = "train", seed: int = 0,
                 amodal: bool = True, depth: str | None = None, depth_scale: float = 1000.0,
                 overwrite: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Render ``count`` images of random meshes with COCO boxes, masks and poses (module docstring).

    Args:
        meshes: mesh files or folders of them; each file is one category (its stem).
        output: the dataset folder (new or empty, unless ``overwrite``).
        backgrounds: a folder of photos, each at least ``size`` (default: random flat colours).
        size: (height, width) of every image.
        objects_per_image: (min, max) meshes drawn per image.
        distance: (min, max) distance of a mesh's centre from the camera, in bounding-sphere radii.
        fov: vertical field of view in degrees.
        ambient, light: (min, max) of the ambient term and of the directional light's strength.
        min_visible: drop an object whose visible mask is less than this fraction of its silhouette.
        samples: multisampling of the colour image (1: off; masks are never antialiased).
        noise, blur, jitter: the composite command's post-processing, 0 to switch off.
        amodal: write each object's amodal mask (its whole silhouette inside the frame, occluded
            parts included) beside the visible one, and its occlusion ratio.
        depth: ``"png"`` (16-bit, ``round(z * depth_scale)``), ``"npy"`` (float32 z) or None:
            a depth map per image, ``OUTPUT/depth/SPLIT/NNNNNN.png|npy``.
        depth_scale: PNG counts per camera-frame unit (default 1000: millimetres when the unit
            is a metre); the depth of the farthest possible surface must fit in 16 bits.

    Returns:
        The manifest written to ``OUTPUT/render.json``.

    Raises:
        ConfigError: bad options, or no headless OpenGL context (the hint names the libraries).
        DataError: a mesh that fails to load, has no faces or misses a texture; unreadable or
            too small backgrounds (each named).
        OutputError: ``output`` exists and is not empty (without ``overwrite``).
    """
    if depth == "png" and (distance[1] + 1.0) * depth_scale > 65535:
        raise ConfigError(f"--depth png: the farthest surface ({distance[1] + 1.0:g} units: --distance MAX + the "
                          f"bounding-sphere radius) times --depth-scale {depth_scale:g} does not fit in 16 bits",
                          hint=f"use --depth-scale {int(65535 / (distance[1] + 1.0))} or less, or --depth npy")
    if "tensorflow" in sys.modules:  # its LLVM clashes with Mesa's llvmpipe (a crash at the first draw)
        for file in mesh_files(meshes):  # the cheap checks here, before a child process starts
            if not file.is_file():
                raise DataError(f"{printable_path(file)}: no such mesh file",
                                hint=f"--meshes takes {', '.join(MESH_SUFFIXES)} files or folders of them")
        options = dict(backgrounds=None if backgrounds is None else str(backgrounds), count=count, size=list(size),
                       objects_per_image=list(objects_per_image), distance=list(distance), fov=fov,
                       ambient=list(ambient), light=list(light), min_visible=min_visible, samples=samples, noise=noise,
                       blur=blur, jitter=jitter, split=split, seed=seed, amodal=amodal, depth=depth,
                       depth_scale=depth_scale, overwrite=overwrite)
        return _render_in_child([str(m) for m in meshes], str(output), options, progress)
    from PIL import Image
    from pycocotools import mask as mask_utils

    from foveal.data.synth.composite import _background, _post_process
    from foveal.data.synth.mnist_m import load_backgrounds

    checks = [(count >= 1, "--count must be at least 1"),
              (1 <= objects_per_image[0] <= objects_per_image[1], "--objects-per-image must be MIN MAX with 1 <= MIN <= MAX"),
              (1.0 < distance[0] <= distance[1], "--distance must be MIN MAX with 1 < MIN <= MAX (bounding-sphere radii)"),
              (1.0 <= fov < 170.0, "--fov must be in [1, 170) degrees"),
              (0 <= min_visible < 1 and min(noise, blur, jitter) >= 0, "--min-visible must be in [0, 1) and noise, blur, "
               "jitter not negative"),
              (0 <= ambient[0] <= ambient[1] and 0 <= light[0] <= light[1], "--ambient and --light must be MIN MAX >= 0"),
              (min(size) >= 16, "--size must be at least 16"),
              (depth in (None, "png", "npy"), f"--depth must be png or npy, not {depth!r}"),
              (depth_scale > 0, "--depth-scale must be positive")]
    require_all(checks)
    out = Path(output)
    refuse_nonempty_output(out, overwrite)
    models = [load_mesh(f) for f in mesh_files(meshes)]
    names: list[str] = []
    for m in models:  # one category per file; equal stems get a suffix
        name, k = m.name, 2
        while name in names:
            name, k = f"{m.name}-{k}", k + 1
        names.append(name)
    photos = None
    if backgrounds is not None:
        try:
            photos = load_backgrounds(backgrounds, *size).images
        except DataError as exc:
            raise DataError(exc.message.replace("patch a digit needs", "images to write (--size)"), hint=exc.hint) from None
    renderer = Renderer(size, samples)
    K = intrinsics(size, fov)
    h, w = size
    rng = np.random.default_rng(seed)
    records, annotations = [], []
    with staged_folder(out) as staging, contextlib.ExitStack() as cleanup:
        cleanup.callback(renderer.release)
        (staging / split).mkdir()
        (staging / "annotations").mkdir()
        if depth:
            (staging / "depth" / split).mkdir(parents=True)
        for index in range(count):
            objects, poses = [], []
            for _ in range(int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))):
                k = int(rng.integers(len(models)))
                mesh = models[k]
                scale = 1.0 / mesh.radius  # the mesh's bounding sphere has radius 1
                rotation = random_rotation(rng)
                away = float(rng.uniform(*distance))
                # image position of the centre: the bounding sphere's image inside the frame when it fits
                margin_x = min(w / 2, K[0, 0] / away * 1.0 + 1)
                margin_y = min(h / 2, K[1, 1] / away * 1.0 + 1)
                u = float(rng.uniform(margin_x - 0.5, w - margin_x - 0.5)) if margin_x < w / 2 else (w - 1) / 2
                v = float(rng.uniform(margin_y - 0.5, h - margin_y - 0.5)) if margin_y < h / 2 else (h - 1) / 2
                t_cv = np.array([(u - K[0, 2]) / K[0, 0] * away, (v - K[1, 2]) / K[1, 1] * away, away])
                # OpenCV camera frame: X_cam = s R (X - c) + t = s R X + (t - s R c)
                R_cv, t_file = rotation, t_cv - scale * rotation @ mesh.center
                model_view = np.eye(4)
                model_view[:3, :3] = _GL_TO_CV @ (scale * R_cv)
                model_view[:3, 3] = _GL_TO_CV @ t_file
                objects.append((mesh, model_view))
                poses.append((k, R_cv, t_file, scale))
            direction = rng.normal(size=3)
            direction[2] = abs(direction[2]) + 0.5  # from the camera's side (OpenGL: +z points to the viewer)
            direction /= np.linalg.norm(direction)
            tint = 1.0 + rng.uniform(-0.15, 0.15, 3)
            color = tint * float(rng.uniform(*light))
            amb = float(rng.uniform(*ambient))
            rgba, owner, solos, z = renderer.render(objects, K, light_direction=direction, light_color=color,
                                                    ambient=amb, depth=bool(depth))
            if photos is not None:
                canvas = _background(rng, photos, size)
            else:
                canvas = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy()
            alpha = rgba[..., 3:4].astype(np.float32) / 255.0
            canvas = np.round(rgba[..., :3] * alpha + canvas * (1 - alpha)).astype(np.uint8)
            canvas = _post_process(rng, canvas, noise, blur, jitter)
            name = f"{index:06d}.jpg"
            Image.fromarray(canvas).save(staging / split / name, quality=95)
            image_id = index + 1
            records.append({"id": image_id, "file_name": name, "width": w, "height": h,
                            "camera_K": [[round(float(x), 6) for x in row] for row in K]})
            if z is not None:
                records[-1] |= _write_depth(z, staging, f"depth/{split}/{index:06d}.{depth}", depth_scale)
            for j, (k, R_cv, t_file, scale) in enumerate(poses):
                visible = owner == j + 1
                area = int(solos[j].sum())
                if not area or visible.sum() < max(1, min_visible * area):
                    continue
                annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": k + 1,
                              "bbox": _bbox(visible), "area": int(visible.sum()), "iscrowd": 0,
                              "segmentation": _rle(mask_utils, visible)}
                if amodal:
                    annotation |= {"amodal_segmentation": _rle(mask_utils, solos[j]), "amodal_bbox": _bbox(solos[j]),
                                   "amodal_area": area, "occlusion": round(1.0 - float(visible.sum()) / area, 6)}
                annotation["pose"] = {"R": [[round(float(x), 8) for x in row] for row in R_cv],
                                      "t": [round(float(x), 8) for x in t_file], "scale": round(float(scale), 10)}
                annotations.append(annotation)
            if progress and (index + 1) % 100 == 0:
                progress(f"{index + 1}/{count} images")
        categories = [{"id": k + 1, "name": names[k], "supercategory": "mesh", "mesh": models[k].path}
                      for k in range(len(models))]
        info = {"description": "foveal datasets synth render", "seed": seed,
                "pose": "X_cam = scale * R @ X_mesh + t, OpenCV camera frame; pixel = K @ X_cam / z"}
        if amodal:
            info["amodal"] = ("amodal_segmentation (RLE), amodal_bbox, amodal_area: the object's whole silhouette "
                              "inside the image, occluded parts included; occlusion = 1 - area / amodal_area "
                              "(not COCO fields: foveal's)")
        if depth:
            info["depth"] = ("images[].depth_file (relative to the dataset folder): camera-frame z of the nearest "
                             "surface per pixel (0: background) = value * images[].depth_scale, in the units of "
                             "the poses' t")
        coco = {"info": info,
                "images": records, "annotations": annotations, "categories": categories}
        (staging / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco), encoding="utf-8")
        manifest = {"kind": "render", "meshes": [m.path for m in models], "faces": [m.faces for m in models],
                    "backgrounds": printable_path(backgrounds) if backgrounds is not None else None,
                    "photos": len(photos) if photos is not None else 0, "count": count, "instances": len(annotations),
                    "size": [h, w], "objects_per_image": list(objects_per_image), "distance": list(distance),
                    "fov": fov, "ambient": list(ambient), "light": list(light), "min_visible": min_visible,
                    "samples": samples, "noise": noise, "blur": blur, "jitter": jitter, "seed": seed, "split": split,
                    "amodal": amodal, "depth": depth, "depth_scale": depth_scale if depth == "png" else None,
                    "renderer": renderer.ctx.info.get("GL_RENDERER", "?"),
                    "annotations": f"annotations/instances_{split}.json"}
        (staging / "render.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, width, height]`` of a non-empty mask's pixels."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _rle(mask_utils: Any, mask: np.ndarray) -> dict[str, Any]:
    """A bool mask as COCO's compressed RLE with a JSON string for ``counts``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _write_depth(z: np.ndarray, root: Path, relative: str, scale: float) -> dict[str, Any]:
    """Write a depth map (16-bit PNG of ``round(z * scale)``, or float32 .npy) and return the
    image record's fields that name it."""
    from PIL import Image

    path = root / relative
    if relative.endswith(".npy"):
        with path.open("wb") as f:
            np.save(f, z.astype(np.float32))
        return {"depth_file": relative, "depth_scale": 1.0}
    counts = np.clip(np.round(z.astype(np.float64) * scale), 0, 65535).astype(np.uint16)
    Image.fromarray(counts).save(path)
    return {"depth_file": relative, "depth_scale": 1.0 / scale}


def _render_in_child(meshes: list[str], output: str, options: dict[str, Any],
                     progress: Callable[[str], None] | None) -> dict[str, Any]:
    """Run :func:`make_renders` in a fresh Python that has not loaded TensorFlow.

    TensorFlow's shared library carries its own LLVM, whose symbols clash with those of the LLVM
    Mesa's llvmpipe compiles shaders with: in a process that imported TensorFlow, the first draw
    crashes. The child gets the same arguments as JSON on stdin, streams its progress lines and
    answers the manifest (or the error to raise again here) as JSON on stdout.
    """
    import foveal

    env = dict(os.environ)
    source = str(Path(foveal.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    child = subprocess.Popen([sys.executable, "-c", "from foveal.data.synth.render import _child_main; _child_main()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    child.stdin.write(json.dumps({"meshes": meshes, "output": output, "options": options}))
    child.stdin.close()
    errors = []
    for line in child.stderr:
        if line.startswith("progress: "):
            if progress:
                progress(line[len("progress: "):].rstrip("\n"))
        else:
            errors.append(line)
    answer = child.stdout.read()
    code = child.wait()
    try:
        result = json.loads(answer)
    except ValueError:
        raise ConfigError(f"the rendering process failed (exit status {code}): {''.join(errors[-5:]).strip()}",
                          hint="run the same command in a Python without TensorFlow to see the error") from None
    if "error" in result:
        kinds = {"ConfigError": ConfigError, "DataError": DataError, "OutputError": OutputError}
        raise kinds.get(result["error"], ConfigError)(result["message"], hint=result.get("hint"))
    return result["manifest"]


def _child_main() -> None:
    """The child side of :func:`_render_in_child`."""
    from foveal.errors import FovealError

    request = json.loads(sys.stdin.read())
    try:
        manifest = make_renders(request["meshes"], request["output"], **request["options"],
                                progress=lambda line: print(f"progress: {line}", file=sys.stderr, flush=True))
        print(json.dumps({"manifest": manifest}))
    except FovealError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}))


__all__ = ["Mesh", "MeshPart", "Renderer", "intrinsics", "load_mesh", "make_renders", "mesh_files", "open_context",
           "random_rotation"]
