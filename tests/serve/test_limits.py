"""Stalled, slow and greedy clients: header and body deadlines, the connection cap (loopback only)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

HEADER_TIMEOUT = 1.0
BODY_IDLE = 1.0
BODY_TOTAL = 2.5
CAP = 4


@pytest.fixture(scope="module")
def strict_url(model_file):
    """The served model with short deadlines and a small connection cap, on 127.0.0.1."""
    from foveal.serve.app import background_server, create_app

    app = create_app(model_file, browser_model=False, body_idle_timeout=BODY_IDLE, body_timeout=BODY_TOTAL)
    with background_server(app, "127.0.0.1", header_timeout=HEADER_TIMEOUT, max_connections=CAP) as url:
        yield url


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"  # these tests talk to loopback only
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def read_all(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except socket.timeout:
        pytest.fail(f"the server kept the stalled connection open for {limit} s")
    return b"".join(chunks), time.monotonic() - start


def head(length: int) -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_body_shorter_than_declared_is_answered_408_and_closed(strict_url, images):
    with connect(strict_url) as sock:
        sock.sendall(head(len(images["gray.png"]) + 1000) + images["gray.png"])
        answer, seconds = read_all(sock, limit=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"not received in time" in answer
    assert seconds < BODY_IDLE + 2


def test_body_dripping_past_the_deadline_is_answered_408(strict_url):
    with connect(strict_url) as sock:
        sock.sendall(head(10_000))
        start = time.monotonic()
        try:
            while time.monotonic() - start < BODY_TOTAL + 3:
                sock.sendall(b"x" * 10)  # a little, well within the idle limit, but never all of it
                time.sleep(BODY_IDLE / 3)
        except OSError:  # the server closed the connection: the deadline worked
            pass
        answer, _ = read_all(sock, limit=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - start < BODY_TOTAL + 3


def test_incomplete_headers_are_dropped(strict_url):
    with connect(strict_url) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        answer, seconds = read_all(sock, limit=10)
    assert answer == b""
    assert seconds < HEADER_TIMEOUT + 2
    with connect(strict_url) as sock:  # a connection that sends nothing at all
        answer, seconds = read_all(sock, limit=10)
    assert answer == b"" and seconds < HEADER_TIMEOUT + 2


def test_connections_beyond_the_cap_get_503_then_service_resumes(strict_url, images):
    stalled = []
    try:
        for _ in range(CAP):  # CAP requests stuck in their bodies hold every place
            stalled.append(connect(strict_url))
            stalled[-1].sendall(head(100_000) + b"\x89PNG")
            time.sleep(0.05)
        refused = httpx.post(strict_url + "/predict", files={"image": ("g.png", images["gray.png"])}, timeout=10)
        assert refused.status_code == 503
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(0.3)
    answer = httpx.post(strict_url + "/predict", files={"image": ("g.png", images["gray.png"])}, timeout=30)
    assert answer.status_code == 200, answer.text


def test_normal_requests_are_untouched(strict_url, images):
    with httpx.Client(base_url=strict_url, timeout=30) as client:  # keep-alive: several requests, one socket
        for _ in range(3):
            assert client.post("/predict", files={"image": ("g.png", images["gray.png"])}).status_code == 200
            assert client.get("/health").status_code == 200


def test_port_in_use_says_pick_another_port():
    from foveal.errors import FovealError
    from foveal.serve.app import bind_socket

    taken = bind_socket("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(FovealError, match="--port") as caught:
            bind_socket("127.0.0.1", taken.getsockname()[1])
        assert "--host" not in str(caught.value)
    finally:
        taken.close()


@pytest.mark.parametrize("error", [OSError(99, "Cannot assign requested address"),
                                   socket.gaierror(-2, "Name or service not known")])
def test_bad_host_says_fix_the_host_not_the_port(monkeypatch, error):
    """An address this machine does not have (faked: the tests bind loopback only)."""
    from foveal.errors import FovealError
    from foveal.serve.app import bind_socket

    def refuse(self, address):
        raise error

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with pytest.raises(FovealError, match="--host") as caught:
        bind_socket("127.0.0.1", 8000)
    assert "--port" not in str(caught.value).split("hint:")[0] and "another --port" not in str(caught.value)


@pytest.mark.parametrize("host", ["300.1.1.1", "1.2.3", "127.0.0.1:8000", "http://127.0.0.1", "my host"])
def test_malformed_host_is_refused_before_any_socket(monkeypatch, host):
    import argparse

    from foveal.errors import ConfigError
    from foveal.serve.cli import _check, add_serve_command

    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "m.keras", "--host", host])
    monkeypatch.setattr(socket.socket, "bind", lambda *a: pytest.fail("tried to bind"))
    with pytest.raises(ConfigError, match="--host"):
        _check(args)


@pytest.mark.parametrize("option", ["--read-timeout", "--body-timeout", "--max-connections"])
def test_limit_options_are_checked(option):
    import argparse

    from foveal.errors import ConfigError
    from foveal.serve.cli import _check, add_serve_command

    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "m.keras", option, "0"])
    with pytest.raises(ConfigError, match=option):
        _check(args)


def test_deadline_ends_with_the_body():
    """After the whole body has arrived, reads (a response waiting for the client to leave) wait freely."""
    import asyncio

    from foveal.serve.guard import BodyTimeout

    async def scenario() -> list[str]:
        messages = [{"type": "http.request", "body": b"x", "more_body": False}]
        seen: list[str] = []

        async def receive():
            if messages:
                return messages.pop()
            await asyncio.sleep(0.3)  # longer than the idle limit below
            return {"type": "http.disconnect"}

        async def app(scope, receive_, send):
            seen.append((await receive_())["type"])
            seen.append((await receive_())["type"])

        await BodyTimeout(app, idle=0.1, total=0.2)({"type": "http"}, receive, None)
        return seen

    assert asyncio.run(scenario()) == ["http.request", "http.disconnect"]


def test_unfinished_head_over_16_kib_is_refused(strict_url):
    """A request head still growing past 16 KiB is refused at once (400), not held until the deadline."""
    with connect(strict_url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 20_000)
        answer, seconds = read_all(sock, limit=10)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert seconds < HEADER_TIMEOUT
