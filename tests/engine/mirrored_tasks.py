"""Train TASK (detect, localize or segment) with ``--distribute mirrored`` over two logical CPU
devices: ``python mirrored_tasks.py FOLDER TASK``. Run as a script by ``test_distribute_tasks.py``:
the devices must be set before TensorFlow starts, so it cannot run inside the test process, and
one task per process, since two strategies over two devices in one process can mix up their
all-reduce keys (TensorFlow's collective instance keys). Prints one JSON line of results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the data writers

from detection.test_detect_run import make_shapes  # noqa: E402
from localization.conftest import write_rectangles  # noqa: E402
from segmentation.conftest import write_squares  # noqa: E402

from foveal.detection.config import DetectConfig  # noqa: E402
from foveal.localization.train import LocalizeConfig  # noqa: E402
from foveal.segmentation.train import SegmentConfig  # noqa: E402
from foveal.tasks import run_train  # noqa: E402

root = Path(sys.argv[1])
mirrored = dict(distribute="mirrored", devices=["CPU:0", "CPU:1"], tensorboard=True, progress=False,
                report_images=0, epochs=1)
configs = {
    "detect": DetectConfig(data=str(make_shapes(root / "shapes", count=10)), image_size=[64],
                           backbone_options={"width": 16}, anchors=2, batch_size=4, val_split=0.2, **mirrored),
    "localize": LocalizeConfig(data=str(write_rectangles(root / "rects", 10, size=32)), image_size=[32],
                               model_options={"width": 16}, batch_size=4, val_split=0.2, test_split=0.2, **mirrored),
    "segment": SegmentConfig(data=str(write_squares(root / "squares", 6, 32, 32)), model_options={"depth": 2, "width": 8},
                             crop_size=[32], batch_size=2, val_split=0.2, test_split=0.2, **mirrored),
}
results = {}
for task, cfg in configs.items():
    if task != sys.argv[2]:
        continue
    result = run_train(task, cfg, output=str(root / "runs"), name=task)
    results[task] = {"run_dir": str(result.run_dir), "loss": result.history["loss"],
                     "metrics": sorted(result.metrics or {})}

# The detector computes its own loss: under two replicas each returns half of it, as Keras' losses do,
# since the replicas' gradients are summed.
from foveal.models import load_model  # noqa: E402

if "detect" not in results:
    print("RESULTS " + json.dumps(results))
    sys.exit(0)
strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
model, _ = load_model(Path(results["detect"]["run_dir"]) / "best.keras")
x = tf.random.stateless_uniform([2, 64, 64, 3], seed=[1, 2], maxval=255.0)
y = {"boxes": tf.constant([[[0.1, 0.1, 0.5, 0.5]]] * 2), "classes": tf.constant([[0]] * 2)}
alone = float(model.compute_loss(x, y, model(x, training=False)))
per_replica = strategy.run(lambda: model.compute_loss(x, y, model(x, training=False)))
results["detect_loss"] = {"alone": alone, "replicas": [float(v) for v in strategy.experimental_local_results(per_replica)]}
print("RESULTS " + json.dumps(results))
