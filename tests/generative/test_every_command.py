"""inspect, benchmark, prune and a scored export of generative models (tiny untrained models; see
conftest): every model-file command of the one grammar works on a VAE, GAN and cGAN."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveal.cli.main import main

from .conftest import save_generator, save_judge, write_shapes_npz


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A cgan and a vae, each in a run folder with a judge classifier.keras, and 3-class images (.npz)."""
    root = tmp_path_factory.mktemp("gen_every")
    paths = {}
    for kind in ("cgan", "vae"):
        (root / kind).mkdir()
        paths[kind] = save_generator(root / kind / "best.keras", kind)
        if kind == "cgan":
            save_judge(root / kind / "classifier.keras")
        else:
            (root / kind / "classifier.keras").write_bytes((root / "cgan" / "classifier.keras").read_bytes())
    return paths, write_shapes_npz(root / "shapes.npz")


def test_inspect_lists_each_network_with_counts_from_the_formulas(runs, capsys):
    from foveal.models import load_model

    paths, _ = runs
    assert main(["generate", "inspect", str(paths["cgan"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    model, _ = load_model(paths["cgan"])
    assert list(report["parts"]) == ["generator", "discriminator"] and report["task"] == "generate"
    assert report["parameters"] == model.count_params()
    g, d = report["parts"]["generator"], report["parts"]["discriminator"]
    assert g["totals"]["parameters"] == model.generator.count_params()
    assert g["inputs"] == {"z": [4], "label": []} and d["input_shape"] == [16, 16, 1]
    layers = {row["name"]: row for row in g["layers"]}
    assert layers["project"]["flops"] == 2 * (4 + 50) * (4 * 4 * 16)  # z + label embedding -> 4x4x16, no bias
    assert layers["label_embedding"]["flops_counted"]  # a lookup: 0 FLOPs, counted
    fields = {row["name"]: row["receptive_field"] for row in d["layers"]}
    assert fields["conv1"] == [4, 4] and fields["conv2"] == [10, 10]  # 4x4 kernels, stride 2: 4 + 3 * 2
    assert g["memory"]["inference"]["parameters"] == g["totals"]["parameters"]


def test_inspect_of_a_vae_writes_its_page(runs, tmp_path, capsys):
    paths, _ = runs
    assert main(["inspect", str(paths["vae"]), "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== encoder" in out and "== decoder" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["parts"]) == ["encoder", "decoder"]
    page = (tmp_path / "inspect.html").read_text()
    assert "Layers of the encoder" in page and "Layers of the decoder" in page
    assert (tmp_path / "filters_encoder.png").is_file()
    assert main(["inspect", str(paths["vae"]), "--image", str(tmp_path / "filters_encoder.png")]) == 2
    assert "Grad-CAM" in capsys.readouterr().err


def test_benchmark_draws_samples_at_several_batch_sizes(runs):
    from foveal.export.benchmark import benchmark, format_benchmark

    paths, _ = runs
    table = benchmark(paths["cgan"], runtimes=("keras-predict", "keras-call"), warmup=1, runs=2, batch_size=(1, 4))
    assert [r["runtime"] for r in table["results"]] == ["keras-predict", "keras-call"]
    for r in table["results"]:
        assert r["task"] == "generate" and set(r["throughput_by_batch_size"]) == {"1", "4"}
        assert r["batch1_end_to_end"]["p50_ms"] > 0 and r["throughput_images_per_s"] > 0
    assert "img/s @4" in format_benchmark(table) and "GET /generate" in format_benchmark(table)


@pytest.mark.slow  # a GAN step traced and run, samples judged twice: 40 s at load 23
def test_prune_the_generator_and_score_it_with_the_judge(runs, tmp_path):
    from foveal.models import load_model
    from foveal.shrink.cli import prune_file
    from foveal.shrink.prune import prunable_variables

    paths, data = runs
    target = tmp_path / "pruned.keras"
    report = prune_file(paths["cgan"], str(data), sparsity=0.5, epochs=1, steps_per_epoch=2, batch_size=8, count=12,
                        output=target)
    assert report["task"] == "generate" and report["pruned_network"] == "generator"
    assert report["metric"].startswith("classifier-space Frechet") and report["compared_images"] == 12
    assert report["quality_before"] >= 0 and report["quality_after"] >= 0
    assert "class_accuracy" in report["scores_after"]
    pruned, card = load_model(target)
    assert card.training["sparsity"] == pytest.approx(0.5, abs=0.01)
    for name, var in prunable_variables(pruned.generator):
        assert np.mean(np.asarray(var) == 0) == pytest.approx(0.5, abs=0.01), name
    original, _ = load_model(paths["cgan"])
    assert not any(np.mean(np.asarray(var) == 0) > 0.1 for _, var in prunable_variables(pruned.discriminator))
    assert pruned.discriminator.count_params() == original.discriminator.count_params()


def test_prune_without_a_judge_says_what_to_pass(runs, tmp_path, capsys):
    paths, data = runs
    lone = tmp_path / "lone.keras"
    lone.write_bytes(paths["cgan"].read_bytes())
    assert main(["prune", str(lone), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "nothing to score the pruned generator with" in err and "--classifier" in err


@pytest.mark.slow
def test_prune_a_vae_reports_its_elbo(runs, tmp_path):
    from foveal.shrink.cli import prune_file

    paths, data = runs
    report = prune_file(paths["vae"], str(data), sparsity=0.5, epochs=1, steps_per_epoch=2, batch_size=8, count=12,
                        output=tmp_path / "vae.keras")
    assert report["pruned_network"] == "decoder" and report["overall_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert report["scores_before"]["neg_elbo"] > 0 and report["scores_after"]["neg_elbo"] > 0


@pytest.mark.slow
def test_quantized_export_is_scored_by_the_frechet_distance(runs, tmp_path):
    pytest.importorskip("ai_edge_litert")
    from foveal.export import export_model

    paths, data = runs
    report = export_model(paths["cgan"], "tflite", quantize="dynamic", data=str(data), output=tmp_path / "q/",
                          samples=12, accuracy_limit=12)
    assert report.passed and report.accuracy_metric.startswith("classifier-space Frechet")
    assert set(report.accuracy) == {"keras", "export", "difference"}
    assert abs(report.accuracy["difference"]) < 1.0


@pytest.mark.slow
def test_benchmark_times_the_exports_too(runs):
    pytest.importorskip("tf2onnx")
    from foveal.export.benchmark import benchmark

    paths, _ = runs
    table = benchmark(paths["vae"], runtimes=("keras-predict", "onnx"), warmup=1, runs=3, batch_size=(1, 8))
    assert [r["runtime"] for r in table["results"]] == ["keras-predict", "onnx"]
    assert all(r["throughput_by_batch_size"]["8"] > 0 for r in table["results"])
