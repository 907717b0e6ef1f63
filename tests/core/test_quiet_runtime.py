"""TensorFlow's runtime advice lines stay out of a foveal user's terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A graph-mode uint8 transpose: what several tasks' pipelines trace, and where TensorFlow 2.21's
# oneDNN logs "supports DT_UINT8 only on platforms with AVX-512" at ERROR level.
PROGRAM = """
import foveal
import tensorflow as tf
tf.function(lambda a: tf.transpose(a, [0, 2, 1, 3]))(tf.zeros([2, 4, 4, 3], tf.uint8))
"""


@pytest.mark.slow
def test_importing_foveal_hides_tensorflows_runtime_error_advice():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "DT_UINT8" not in done.stderr and "E0000" not in done.stderr, done.stderr
