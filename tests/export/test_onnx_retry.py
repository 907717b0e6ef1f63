"""The ONNX writer converts again when tf2onnx's graph has outputs of the wrong rank (its optimizer
now and then drops a closing Squeeze: seen on a 1-channel ESPCN, about 1 export in 20)."""

from __future__ import annotations

import pytest
from enhancement.conftest import save_enhancer

from foveal.errors import FovealError
from foveal.export import formats
from foveal.export.tasks import load


def _ranks_wrong_first(monkeypatch, wrong_times: int) -> list[int]:
    """Make the first ``wrong_times`` rank checks report a 5-D output; returns the call log."""
    real, calls = formats._onnx_output_ranks, []

    def ranks(path):
        calls.append(path)
        return [5] if len(calls) <= wrong_times else real(path)

    monkeypatch.setattr(formats, "_onnx_output_ranks", ranks)
    return calls


def test_a_graph_of_the_wrong_rank_is_converted_again(tmp_path, monkeypatch):
    model, card = load(save_enhancer(tmp_path / "y.keras", scale=3, channels=1))
    assert formats._onnx_output_ranks(formats.write_onnx(model, card, tmp_path / "plain.onnx")) == [4]
    calls = _ranks_wrong_first(monkeypatch, 1)
    assert formats.write_onnx(model, card, tmp_path / "y.onnx").is_file()
    assert len(calls) == 2


def test_three_wrong_graphs_are_an_error(tmp_path, monkeypatch):
    model, card = load(save_enhancer(tmp_path / "y.keras", scale=3, channels=1))
    _ranks_wrong_first(monkeypatch, 99)
    with pytest.raises(FovealError, match="rank"):
        formats.write_onnx(model, card, tmp_path / "y.onnx")
    assert not (tmp_path / "y.onnx").exists()
