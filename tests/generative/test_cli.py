"""``foveal generate train|evaluate|predict`` end to end on 300 real 16x16 digits, GAN resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from foveal.cli.main import main

from .conftest import save_generator


@pytest.fixture(scope="module")
def vae_run(digits_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen_vae")
    code = main(["generate", "train", "--data", str(digits_folder), "--model", "vae", "--latent-dim", "2",
                 "--epochs", "1", "--kl-warmup-epochs", "1", "--classifier-epochs", "1", "--quality-samples", "64",
                 "--output", str(out), "--name", "vae", "--no-progress"])
    assert code == 0
    return out / "vae"


class _OptimizerProbe(keras.callbacks.Callback):
    """Copies of both optimizers' variables at the start and end of a fit."""

    def __init__(self):
        super().__init__()
        self.begin = self.end = None

    def _copy(self):
        return [[np.array(v) for v in opt.variables] for opt in (self.model.optimizer, self.model.d_optimizer)]

    def on_train_begin(self, logs=None):
        self.begin = self._copy()

    def on_train_end(self, logs=None):
        self.end = self._copy()


@pytest.fixture(scope="module")
def cgan_run(digits_folder, vae_run, tmp_path_factory):
    from foveal.generative import GenerateConfig, train_generator

    out = tmp_path_factory.mktemp("gen_cgan")
    first, second = _OptimizerProbe(), _OptimizerProbe()
    cfg = GenerateConfig(data=str(digits_folder), model="cgan", epochs=1, latent_dim=16, width=8,
                         classifier=str(vae_run / "classifier.keras"), quality_samples=50, output=str(out),
                         name="cgan", progress=False)
    train_generator(cfg, callbacks=[first])
    result = train_generator(resume=out / "cgan", epochs=2, callbacks=[second])
    return out / "cgan", first, second, result


# the VAE's CLI training run (9 CPU-s); the default tier runs every command on saved VAE and cGAN files
# (test_every_command.py) and samples an untrained saved cGAN below
@pytest.mark.slow
def test_vae_run_folder_has_scores_figures_and_report(vae_run):
    metrics = json.loads((vae_run / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0 < metrics["neg_elbo"] < 16 * 16 * np.log(2) * 2
    assert metrics["neg_elbo"] == pytest.approx(metrics["reconstruction_nll"] + metrics["kl"], rel=1e-6)
    assert metrics["frechet"] >= 0 and "kernel_distance" in metrics
    for name in ("report.html", "manifold.png", "reconstructions.png", "samples.png", "samples/epoch_001.png",
                 "classifier.keras", "best.keras"):
        assert (vae_run / name).is_file(), name
    html = (vae_run / "report.html").read_text()
    assert "2-D latent manifold" in html and "negative ELBO" in html and "classifier-space Frechet" in html
    history = (vae_run / "history.csv").read_text().splitlines()[0]
    assert "val_loss" in history and "frechet" in history


@pytest.mark.slow  # uses the VAE run above
def test_predict_writes_pngs_and_a_grid(vae_run, tmp_path, capsys):
    from PIL import Image

    assert main(["predict", str(vae_run / "best.keras"), "--count", "5", "--output", str(tmp_path / "s")]) == 0
    files = sorted((tmp_path / "s").glob("sample_*.png"))
    assert len(files) == 5 and (tmp_path / "s" / "grid.png").is_file()
    assert Image.open(files[0]).size == (16, 16)


@pytest.mark.slow  # uses the VAE run above
def test_evaluate_prints_json(vae_run, digits_folder, capsys):
    capsys.readouterr()
    assert main(["generate", "evaluate", str(vae_run / "best.keras"), "--data", str(digits_folder), "--split", "train",
                 "--count", "40", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "train" and metrics["num_images"] == 300 and metrics["compared_images"] == 40
    assert metrics["judge"].endswith("classifier.keras")


@pytest.mark.slow  # uses the VAE run above
def test_class_option_refused_for_a_vae(vae_run, tmp_path, capsys):
    assert main(["generate", "predict", str(vae_run / "best.keras"), "--class", "3", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not class-conditional" in err and err.count("\n") <= 2


# slow tier: two engine runs of a cGAN (~10 CPU-s). The default tier keeps a GAN's file holding
# both optimizers (test_models.py), their build before fit (tests/engine/test_build_before_fit.py),
# the engine's resume (tests/training/test_trainer.py) and generate's default path (the VAE above).
@pytest.mark.slow
def test_gan_resume_restores_both_optimizers(cgan_run):
    run, first, second, result = cgan_run
    for saved, restored in zip(first.end, second.begin):  # generator's, then discriminator's optimizer
        assert len(saved) == len(restored) > 2
        for a, b in zip(saved, restored):
            np.testing.assert_array_equal(a, b)
    steps = int(first.end[1][0])  # the iteration counter
    assert steps > 0 and int(second.end[0][0]) == int(second.end[1][0]) == 2 * steps
    assert len(result.history["class_accuracy"]) == 2 and len(result.history["frechet"]) == 2
    assert (run / "samples" / "epoch_002.png").is_file()


def test_cgan_samples_a_requested_class_and_refuses_unknown_ones(tmp_path, capsys):
    path = save_generator(tmp_path / "cgan.keras", "cgan")  # untrained, with the card a run writes
    out = tmp_path / "twos"
    assert main(["generate", "predict", str(path), "--class", "two", "--count", "3", "--output", str(out),
                 "--json"]) == 0
    assert {row["class"] for row in json.loads(capsys.readouterr().out)["samples"]} == {"two"}
    assert main(["generate", "predict", str(path), "--class", "eleven", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--class 'eleven'" in err and "no such class" in err


def test_mixed_channel_counts_are_refused_in_one_line(tmp_path, capsys):
    from PIL import Image

    for cls, mode in (("a", "L"), ("b", "RGB")):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new(mode, (8, 8)).save(tmp_path / "data" / cls / f"{i}.png")
    assert main(["generate", "train", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "mix gray and colour" in err and "--channels" in err
    assert not (tmp_path / "runs").exists()
