"""Load test: 1,000 requests from 8 clients while stalled and garbage clients come and go.

Bounded in count (120 hostile connections) and time (each hostile connection is given 15 s to be
closed by the server, the whole test 240 s), on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow

GOOD_CLIENTS = 8
REQUESTS_EACH = 125  # 1,000 in all
HOSTILE = 120
HEADER_TIMEOUT, BODY_IDLE, BODY_TOTAL = 2.0, 2.0, 5.0


def hostile(url: str, kind: str, seed: int) -> tuple[str, bytes, float]:
    """One misbehaving connection: what the server sent back before closing, and how long it took."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    rng = random.Random(seed)
    start = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        if kind == "stalled-body":  # declares more bytes than it sends
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 50000\r\n\r\n\x89PNG\r\n")
        elif kind == "partial-headers":
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
        elif kind == "garbage":
            sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))) + b"\r\n\r\n")
        # "silent": connects and sends nothing
        received = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except socket.timeout:
            return kind, b"STILL OPEN", time.monotonic() - start
        except ConnectionResetError:
            pass
    return kind, received, time.monotonic() - start


def test_thousand_requests_with_hostile_clients_mixed_in(model_file, images):
    from foveal.serve.app import background_server, create_app

    app = create_app(model_file, browser_model=False, body_idle_timeout=BODY_IDLE, body_timeout=BODY_TOTAL)
    names = sorted(images)
    statuses: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()
    started = time.monotonic()
    with background_server(app, "127.0.0.1", header_timeout=HEADER_TIMEOUT) as url:
        def good(index: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                for i in range(REQUESTS_EACH):
                    name = names[(index + i) % len(names)]
                    t = time.perf_counter()
                    answer = client.post("/predict", files={"image": (name, images[name])})
                    with lock:
                        statuses.append(answer.status_code)
                        latencies.append(time.perf_counter() - t)

        kinds = ["stalled-body", "partial-headers", "garbage", "silent"]
        with ThreadPoolExecutor(GOOD_CLIENTS) as good_pool, ThreadPoolExecutor(40) as bad_pool:
            good_runs = [good_pool.submit(good, i) for i in range(GOOD_CLIENTS)]
            bad_runs = []
            for n in range(HOSTILE):  # a few new hostile connections every 50 ms while the good ones run
                bad_runs.append(bad_pool.submit(hostile, url, kinds[n % len(kinds)], n))
                time.sleep(0.05)
            for run in good_runs:
                run.result(timeout=240)
            outcomes = [run.result(timeout=60) for run in bad_runs]
        elapsed = time.monotonic() - started
        health = httpx.get(url + "/health", timeout=10).json()

    assert len(statuses) == GOOD_CLIENTS * REQUESTS_EACH
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert elapsed < 240
    for kind, received, seconds in outcomes:
        assert received != b"STILL OPEN", f"a {kind} connection was still open after 15 s"
        if kind == "stalled-body":
            assert received.startswith(b"HTTP/1.1 408") and seconds < BODY_IDLE + 3
        elif kind == "garbage":
            assert received == b"" or received.startswith(b"HTTP/1.1 400")
        else:
            assert received == b"" and seconds < HEADER_TIMEOUT + 3
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\n1,000 requests, {HOSTILE} hostile connections: {elapsed:.1f} s, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
          f"mean batch {health['stats']['mean_batch']} (cores: {os.cpu_count()})")
