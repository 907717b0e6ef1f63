"""Headless mesh rendering speed: foveal's moderngl renderer against pyrender (EGL and OSMesa); prints JSON.

Each candidate runs in its own Python process (a process holds one OpenGL platform; none may
have imported TensorFlow, whose LLVM clashes with Mesa's llvmpipe) and draws the same scenes:
one mesh (an icosphere of 5,120 or 81,920 faces, and trimesh's box) at random rotations,
SIZE x SIZE pixels, a directional light, reading the colour image back each frame.

* ``moderngl-egl``: :class:`foveal.data.synth.render.Renderer` with 4x multisampling, colour
  plus the object-id pass the masks come from (what ``foveal datasets synth render`` draws per
  one-object image: colour, ids, the object alone).
* ``moderngl-egl-color``: the colour pass only (the fair comparison with pyrender's colour+depth).
* ``moderngl-egl-depth``: as ``moderngl-egl`` plus reading back and linearising the depth buffer
  (what ``synth render --depth`` adds per image).
* ``pyrender-egl`` / ``pyrender-osmesa``: ``pyrender.OffscreenRenderer`` (colour + depth) with
  ``PYOPENGL_PLATFORM`` egl / osmesa; skipped with the reason when pyrender or the library is
  missing (OSMesa: Debian's libosmesa6).
* ``vispy-egl`` / ``vispy-osmesa``: the texts' renderer, vispy's ``scene.SceneCanvas`` offscreen
  (``show=False``) with a flat-shaded ``visuals.Mesh`` and ``canvas.render()`` (colour read back),
  on vispy's EGL backend (Mesa's surfaceless platform: ``EGL_PLATFORM=surfaceless``, which it
  needs without a display) or its OSMesa backend; skipped with the reason when vispy is missing
  (``pip install vispy``; not a foveal dependency).
* ``end-to-end``: ``make_renders`` writing 100 JPEG images with COCO masks and poses (1-3
  meshes per image, coco-mini backgrounds when present), without amodal masks or depth maps;
  ``end-to-end-amodal``: with amodal masks; ``end-to-end-amodal-depth``: with amodal masks and
  16-bit PNG depth maps (the same seed, so the same scenes).

Run from the repository root::

    nice -n 5 .venv/bin/python benchmarks/render_speed.py --backgrounds ../shared/datasets/coco-mini/val2017 > render.json
    nice -n 5 .venv/bin/python benchmarks/render_speed.py --backgrounds ../shared/datasets/coco-mini/val2017 --only moderngl-egl moderngl-egl-depth \
        end-to-end end-to-end-amodal-depth --count 60      # amodal + depth against the baseline

The JSON has frames per second per candidate and scene, the GL renderer string, and the load
average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ["moderngl-egl", "moderngl-egl-color", "moderngl-egl-depth", "pyrender-egl", "pyrender-osmesa",
              "vispy-egl", "vispy-osmesa"]
END_TO_END = {"end-to-end": {"amodal": False}, "end-to-end-amodal": {"amodal": True},
              "end-to-end-amodal-depth": {"amodal": True, "depth": "png"}}


def scenes():
    import trimesh

    return {"icosphere-5120": trimesh.creation.icosphere(subdivisions=4),
            "icosphere-81920": trimesh.creation.icosphere(subdivisions=6),
            "box-12": trimesh.creation.box()}


def run_candidate(name: str, size: int, frames: int) -> dict:
    """Frames per second of ``name`` on each scene (in this process)."""
    import numpy as np

    rng = np.random.default_rng(0)
    results: dict = {}
    if name.startswith("moderngl"):
        sys.path.insert(0, str(ROOT / "src"))
        from foveal.data.synth.render import Mesh, Renderer, _part_arrays, intrinsics, random_rotation

        renderer = Renderer((size, size), samples=4)
        results["gl_renderer"] = renderer.ctx.info.get("GL_RENDERER")
        K = intrinsics((size, size), 50.0)
        for scene, tm in scenes().items():
            mesh = Mesh(scene, scene, [_part_arrays(tm)], np.zeros(3), float(np.linalg.norm(tm.vertices, axis=1).max()))
            light = dict(light_direction=np.array([0.3, 0.3, 0.9]) / np.linalg.norm([0.3, 0.3, 0.9]),
                         light_color=np.ones(3), ambient=0.3)

            def frame():
                mv = np.eye(4)
                mv[:3, :3] = np.diag([1, -1, -1]) @ random_rotation(rng) / mesh.radius
                mv[:3, 3] = [0, 0, -4.0]
                if name == "moderngl-egl-color":
                    renderer.render_color([(mesh, mv)], K, **light)
                else:
                    renderer.render([(mesh, mv)], K, depth=name == "moderngl-egl-depth", **light)

            frame()  # compile shaders, upload buffers
            start = time.perf_counter()
            for _ in range(frames):
                frame()
            results[scene] = round(frames / (time.perf_counter() - start), 1)
        return results
    if name.startswith("vispy"):
        return run_vispy(name.split("-")[1], size, frames, rng)
    os.environ["PYOPENGL_PLATFORM"] = name.split("-")[1]
    try:
        import pyrender
    except ImportError as exc:
        return {"skipped": f"pyrender is not installed ({exc})"}
    try:
        r = pyrender.OffscreenRenderer(size, size)
    except Exception as exc:  # a missing libOSMesa/libEGL
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    for scene, tm in scenes().items():
        s = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[0.3, 0.3, 0.3])
        node = s.add(pyrender.Mesh.from_trimesh(tm, smooth=False))
        pose = np.eye(4)
        pose[2, 3] = 4.0 * float(np.linalg.norm(tm.vertices, axis=1).max())
        s.add(pyrender.PerspectiveCamera(yfov=np.radians(50.0)), pose=pose)
        s.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)

        def frame():
            turn = np.eye(4)
            from foveal.data.synth.render import random_rotation

            turn[:3, :3] = random_rotation(rng)
            s.set_pose(node, turn)
            r.render(s)

        sys.path.insert(0, str(ROOT / "src"))
        frame()
        start = time.perf_counter()
        for _ in range(frames):
            frame()
        results[scene] = round(frames / (time.perf_counter() - start), 1)
    r.delete()
    return results


def run_vispy(backend: str, size: int, frames: int, rng) -> dict:
    """Frames per second of vispy's offscreen scene canvas on ``backend`` ('egl' or 'osmesa')."""
    import numpy as np

    if backend == "egl":
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # Mesa's EGL without a display
    try:
        from vispy import app, scene
        from vispy.visuals.transforms import MatrixTransform
    except ImportError as exc:
        return {"skipped": f"vispy is not installed ({exc})"}
    try:
        app.use_app(backend)
        canvas = scene.SceneCanvas(size=(size, size), show=False, bgcolor="black")
    except Exception as exc:  # a missing libEGL/libOSMesa
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    sys.path.insert(0, str(ROOT / "src"))
    from foveal.data.synth.render import random_rotation

    view = canvas.central_widget.add_view()
    view.camera = scene.cameras.TurntableCamera(fov=50.0, distance=4.0)
    results: dict = {"gl_renderer": str(app.use_app().backend_module.__name__)}
    for name, tm in scenes().items():
        radius = float(np.linalg.norm(tm.vertices, axis=1).max())
        mesh = scene.visuals.Mesh(vertices=tm.vertices / radius, faces=tm.faces, color=(0.8, 0.6, 0.4, 1.0),
                                  shading="flat", parent=view.scene)
        mesh.transform = MatrixTransform()

        def frame():
            turn = np.eye(4)
            turn[:3, :3] = random_rotation(rng).T  # vispy multiplies row vectors
            mesh.transform.matrix = turn
            canvas.render()

        frame()  # compile shaders, upload buffers
        start = time.perf_counter()
        for _ in range(frames):
            frame()
        results[name] = round(frames / (time.perf_counter() - start), 1)
        mesh.parent = None
    canvas.close()
    return results


def end_to_end(count: int, size: int, options: dict, backgrounds: str | None = None) -> dict:
    import trimesh

    sys.path.insert(0, str(ROOT / "src"))
    from foveal.data.synth.render import make_renders

    with tempfile.TemporaryDirectory() as tmp:
        meshes = Path(tmp) / "meshes"
        meshes.mkdir()
        trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(meshes / "box.obj")
        trimesh.creation.icosphere(subdivisions=4).export(meshes / "sphere.ply")
        trimesh.creation.cylinder(radius=0.5, height=1.2, sections=48).export(meshes / "cylinder.glb")
        photos = Path(backgrounds) if backgrounds else None
        start = time.perf_counter()
        manifest = make_renders([meshes], Path(tmp) / "out", count=count, size=(size, size),
                                backgrounds=photos, seed=0, **options)
        took = time.perf_counter() - start
    return {"images": count, "objects": manifest["instances"], "seconds": round(took, 2),
            "images_per_s": round(count / took, 2), "backgrounds": str(photos) if photos else "flat colours",
            "options": options,
            "note": "includes loading meshes and backgrounds, JPEG encoding and RLE masks"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--count", type=int, default=100, help="images of the end-to-end run")
    parser.add_argument("--only", nargs="+", choices=[*CANDIDATES, *END_TO_END], help="run these candidates only")
    parser.add_argument("--backgrounds", help="photos behind the end-to-end renders, e.g. ../shared/datasets/coco-mini/val2017 "
                        "(default: flat colours)")
    parser.add_argument("--candidate", help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    if args.candidate:
        out = end_to_end(args.count, args.size, END_TO_END[args.candidate], args.backgrounds) if args.candidate in END_TO_END else \
            run_candidate(args.candidate, args.size, args.frames)
        print(json.dumps(out))
        return
    load_before = os.getloadavg()
    results = {}
    for name in args.only or [*CANDIDATES, *END_TO_END]:
        child = subprocess.run([sys.executable, __file__, "--candidate", name, "--size", str(args.size),
                                "--frames", str(args.frames), "--count", str(args.count),
                                *(["--backgrounds", args.backgrounds] if args.backgrounds else [])],
                               capture_output=True, text=True)
        lines = child.stdout.strip().splitlines()
        try:
            results[name] = json.loads(lines[-1])
        except (IndexError, ValueError):
            results[name] = {"failed": f"exit {child.returncode}: {child.stderr.strip()[-300:]}"}
    print(json.dumps({"benchmark": "render_speed", "size": args.size, "frames": args.frames, "count": args.count,
                      "frames_per_s": results, "load_average_before": load_before,
                      "load_average_after": os.getloadavg(), "cpu_count": os.cpu_count(),
                      "python": platform.python_version(),
                      "command": " ".join(["python", *sys.argv])}, indent=1))


if __name__ == "__main__":
    main()
