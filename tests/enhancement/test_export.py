"""Export parity of an enhancement model (ONNX), scored with the task's own PSNR on the export."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_onnx_export_matches_keras_at_any_size(tmp_path):
    from foveal.enhancement import EnhanceConfig, train_enhancer
    from foveal.enhancement.export_check import outputs
    from foveal.export import export_model, open_runner
    from foveal.models import load_model

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (30 + i, 34, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    result = train_enhancer(EnhanceConfig(data=str(folder), model="edsr", scale=2, model_options={"blocks": 1, "filters": 8},
                                          patch_size=16, epochs=1, steps_per_epoch=1, batch_size=2, val_split=0.0,
                                          test_split=0.25, output=str(tmp_path), name="run", progress=False))
    model_path = result.run_dir / "best.keras"
    report = export_model(model_path, "onnx", data=str(folder), output=tmp_path / "exp/")
    assert report.passed and report.accuracy_metric == "psnr_y (dB)"
    assert abs(report.accuracy["difference"]) < 1e-3
    model, card = load_model(model_path)
    image = rng.uniform(0, 255, (1, 23, 41, 3)).astype(np.float32)  # another size than the parity samples
    ref = outputs(model, card, image)["enhanced"]
    got = outputs(open_runner(report.path), card, image)["enhanced"]
    assert ref.shape == (1, 46, 82, 3) and np.abs(ref - got).max() < 1e-4
