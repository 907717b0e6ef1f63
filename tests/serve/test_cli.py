"""``foveal serve``'s options, its checks, and a real start, request and Ctrl+C stop."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from foveal.errors import ConfigError, ModelError
from foveal.serve.cli import add_serve_command, handler, main

OPTIONS = ["--host", "--port", "--top-k", "--max-upload-mb", "--max-pixels", "--workers"]



def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="foveal", allow_abbrev=False)
    add_serve_command(p.add_subparsers(dest="command", required=True))
    return p


def test_defaults_and_help(capsys):
    args = parser().parse_args(["serve", "m.keras"])
    assert (args.host, args.port, args.top_k, args.max_upload_mb, args.workers) == ("127.0.0.1", 8000, 5, 10.0, 1)
    assert args.func is handler
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert re.search(rf"{option} \S+\s+\S", text), option  # every option has a help line
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "m.keras", "--work", "2"])  # no abbreviations


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "--port"),
    (["--top-k", "0"], "--top-k"),
    (["--max-upload-mb", "-1"], "--max-upload-mb"),
    (["--workers", "2", "--port", "0"], "--port 0"),
])
def test_bad_options(argv, message):
    args = parser().parse_args(["serve", "m.keras", *argv])
    with pytest.raises(ConfigError, match=message):
        handler(args, {})


def test_missing_model(tmp_path, capsys):
    args = parser().parse_args(["serve", str(tmp_path / "none.keras"), "--port", "0"])
    with pytest.raises(ModelError, match="not found"):
        handler(args, {})
    assert main([str(tmp_path / "none.keras")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_serve_prints_the_url_answers_and_stops_on_ctrl_c(model_file, images):
    # `python -m foveal.serve.cli` is `foveal serve` without the rest of the command line.
    command = [sys.executable, "-m", "foveal.serve.cli", str(model_file), "--port", "0", "--top-k", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        url = match.group(0)
        assert "lenet5" in line and "3 classes" in line
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(url + "health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert health.json()["model"]["classes"] == ["a", "b", "c"]
        answer = httpx.post(url + "predict", files={"image": ("g.png", images["gray.png"])}, timeout=30).json()
        assert len(answer["predictions"]) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
