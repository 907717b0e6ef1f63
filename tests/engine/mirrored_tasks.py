"""Train TASK (detect, localize or segment) distributed: ``python mirrored_tasks.py FOLDER TASK``
runs ``--distribute mirrored`` over two logical CPU devices; ``python mirrored_tasks.py FOLDER TASK
WORKERS INDEX`` runs worker INDEX of ``--distribute multi-worker`` (WORKERS: comma-separated
HOST:PORT). Run as a script by ``test_distribute_tasks.py``: the devices must be set before
TensorFlow starts, so it cannot run inside the test process, and one task per process, since two
strategies over two devices in one process can mix up their all-reduce keys (TensorFlow's
collective instance keys). Prints one JSON line of results."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import tensorflow as tf

multi_worker = len(sys.argv) > 3
if not multi_worker:
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

root = data = Path(sys.argv[1])
if multi_worker:  # the chief writes the data, both read it; each worker has its own output folder
    data, root = root / "data", root / f"worker{sys.argv[4]}"
    if sys.argv[4] != "0":
        while not (data / "ready").exists():
            time.sleep(0.1)
    strategy_options = dict(distribute="multi-worker", workers=sys.argv[3].split(","), worker_index=int(sys.argv[4]),
                            worker_timeout=120)
else:
    strategy_options = dict(distribute="mirrored", devices=["CPU:0", "CPU:1"])
mirrored = dict(**strategy_options, tensorboard=True, progress=False, report_images=0, epochs=1)
writers = {"detect": lambda: make_shapes(data / "shapes", count=10),
           "localize": lambda: write_rectangles(data / "rects", 10, size=32),
           "segment": lambda: write_squares(data / "squares", 6, 32, 32)}
if not multi_worker or sys.argv[4] == "0":  # "ready" names the written dataset (a folder or a file)
    (data / "ready.tmp").write_text(str(writers[sys.argv[2]]()))
    (data / "ready.tmp").rename(data / "ready")  # whole, when the other worker sees it
folder = (data / "ready").read_text()
configs = {
    "detect": lambda: DetectConfig(data=folder, image_size=[64], backbone_options={"width": 16},
                                   anchors=2, batch_size=4, val_split=0.2, **mirrored),
    "localize": lambda: LocalizeConfig(data=folder, image_size=[32], model_options={"width": 16},
                                       batch_size=4, val_split=0.2, test_split=0.2, **mirrored),
    "segment": lambda: SegmentConfig(data=folder, model_options={"depth": 2, "width": 8},
                                     crop_size=[32], batch_size=2, val_split=0.2, test_split=0.2, **mirrored),
}
results = {}
task = sys.argv[2]
result = run_train(task, configs[task](), output=str(root / "runs"), name=task)
results[task] = {"run_dir": str(result.run_dir), "loss": result.history["loss"],
                 "metrics": sorted(result.metrics or {})}

# The detector computes its own loss: under two replicas each returns half of it, as Keras' losses do,
# since the replicas' gradients are summed.
from foveal.models import load_model  # noqa: E402

if "detect" not in results or multi_worker:
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
