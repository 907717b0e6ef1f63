"""Offline, proved: with every socket but loopback blocked, foveal works and never tries the network
unless the user asks for a download; an asked-for download fails with the clear offline message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# Installed in this process (fixture) and in a child process (source below): any connection or
# name lookup that is not loopback is recorded and refused.
BLOCKER = textwrap.dedent('''
    import ipaddress, socket, sys

    ATTEMPTS = []
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _local(host):
        if host in ("localhost", "", None):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _allowed(sock, address):
        return sock.family == socket.AF_UNIX or _local(address[0])

    def connect(self, address):
        if not _allowed(self, address):
            ATTEMPTS.append(("connect", address))
            print(f"BLOCKED connect {address}", file=sys.stderr)
            raise OSError(101, "Network is unreachable (blocked by the offline test)")
        return _connect(self, address)

    def connect_ex(self, address):
        if not _allowed(self, address):
            ATTEMPTS.append(("connect_ex", address))
            print(f"BLOCKED connect {address}", file=sys.stderr)
            return 101
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            ATTEMPTS.append(("getaddrinfo", host))
            print(f"BLOCKED lookup {host}", file=sys.stderr)
            raise socket.gaierror(-3, "Temporary failure in name resolution (blocked by the offline test)")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
''')


@pytest.fixture
def offline():
    """Block non-loopback sockets in this process; yields the list of attempts."""
    originals = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    namespace: dict = {}
    exec(compile(BLOCKER, "offline-blocker", "exec"), namespace)
    try:
        yield namespace["ATTEMPTS"]
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = originals


def test_blocker_blocks(offline):
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never reached
    assert offline and offline[0][0] == "getaddrinfo"
    offline.clear()
    with socket.socket() as server:  # loopback still works
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert offline == []


def digits_png(folder: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    path = folder / "seven.png"
    image = load_digits().images[7]
    Image.fromarray(np.round(image * 255 / 16).astype(np.uint8)).save(path)
    return path


def test_predict_and_inspect_never_try_the_network(offline, tmp_path, capsys):
    """The fast part: a saved model is predicted on and inspected with the network blocked."""
    from foveal.cli.main import main
    from foveal.models import ModelCard, build_model, save_model

    model = save_model(build_model("lenet5", num_classes=10), tmp_path / "m.keras",
                       ModelCard("lenet5", [str(i) for i in range(10)], (32, 32, 1)))
    image = digits_png(tmp_path)
    assert main(["predict", str(model), str(image), "--top-k", "2"]) == 0
    assert main(["inspect", str(model)]) == 0
    assert main(["datasets", "inspect", "digits"]) == 0
    capsys.readouterr()
    assert offline == []


@pytest.mark.slow
def test_train_evaluate_predict_export_inspect_never_try_the_network(offline, tmp_path, capsys):
    from foveal.cli.main import main

    runs = tmp_path / "runs"
    assert main(["train", "--data", "digits", "--model", "lenet5", "--image-size", "32", "--epochs", "1",
                 "--output", str(runs), "--name", "offline", "--seed", "1"]) == 0
    best = runs / "offline" / "best.keras"
    assert best.is_file()
    assert main(["evaluate", str(best), "--data", "digits"]) == 0
    assert main(["predict", str(best), str(digits_png(tmp_path))]) == 0
    assert main(["export", str(best), "--format", "onnx", "--output", str(tmp_path / "m.onnx"),
                 "--samples", "8"]) == 0
    assert main(["inspect", str(best)]) == 0
    capsys.readouterr()
    assert offline == [], offline


@pytest.mark.slow
def test_asked_for_download_fails_with_the_offline_message(tmp_path):
    """--weights imagenet with an empty Keras cache (a fresh KERAS_HOME): one clear error, exit 2."""
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), y_train=np.arange(20) % 2)
    code = BLOCKER + textwrap.dedent(f'''
        from foveal.cli.main import main
        status = main(["train", "--data", {str(data)!r}, "--model", "mobilenetv2", "--weights", "imagenet",
                       "--epochs", "1", "--output", {str(tmp_path / "runs")!r}])
        print(f"ATTEMPTS {{len(ATTEMPTS)}}", file=sys.stderr)
        sys.exit(status)
    ''')
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "the download failed (offline?)" in done.stderr
    assert str(keras_home / "models") in done.stderr  # says where to put the file by hand
    assert "BLOCKED" in done.stderr  # the user asked for a download, so it was tried, and refused
