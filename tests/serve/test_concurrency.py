"""Concurrent requests are batched together but each gets its own image's answer."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import httpx
import numpy as np
import pytest

from foveal.serve.app import Batcher, _bucket

CLIENTS = 8
ROUNDS = 3


def probabilities(answer: dict) -> dict[str, float]:
    return {p["label"]: p["probability"] for p in answer["predictions"]}


def test_eight_clients_each_get_their_own_answer(server_url, images):
    names = sorted(images)
    assert len(names) == CLIENTS
    with httpx.Client(base_url=server_url, timeout=60) as client:
        alone = {name: probabilities(client.post("/predict", params={"top_k": 3},
                                                 files={"image": (name, images[name])}).json())
                 for name in names}
        batches_before = client.get("/health").json()["stats"]["batches"]
    # The images must tell apart for the test to mean anything.
    vectors = [tuple(round(alone[n][c], 4) for c in "abc") for n in names]
    assert len(set(vectors)) == CLIENTS

    start = threading.Barrier(CLIENTS)
    got: dict[str, list[dict]] = {name: [] for name in names}
    failures: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with httpx.Client(base_url=server_url, timeout=60) as client:
                for _ in range(ROUNDS):
                    start.wait(timeout=60)
                    answer = client.post("/predict", params={"top_k": 3}, files={"image": (name, images[name])})
                    assert answer.status_code == 200, answer.text
                    got[name].append(answer.json())
        except BaseException as exc:  # re-raised in the main thread below
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[0]
    for name in names:
        assert len(got[name]) == ROUNDS
        for answer in got[name]:
            assert answer["file"] == name
            for label, p in probabilities(answer).items():
                assert p == pytest.approx(alone[name][label], abs=2e-5), name

    with httpx.Client(base_url=server_url, timeout=60) as client:
        stats = client.get("/health").json()["stats"]
    # At most one model call per request. Whether they pile up into fewer calls depends on the
    # machine's load (a tiny model on a busy CI machine answers each before the next arrives, 24
    # calls for 24 requests); test_batcher_hands_each_row_to_its_request shows the batching
    # itself without a race.
    assert stats["batches"] - batches_before <= CLIENTS * ROUNDS


class Gate:
    """A fake model: row i of the output is (mean of image i, 1 - that); the first call waits
    for the gate to open, so the images sent meanwhile pile up in the queue."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        self.entered.set()
        self.open.wait(timeout=30)
        means = batch.reshape(len(batch), -1).mean(axis=1)
        return np.stack([means, 1 - means], axis=1)


def test_batcher_hands_each_row_to_its_request():
    model = Gate()
    batcher = Batcher(model, max_batch=4)
    try:
        first = batcher.submit(np.full((2, 2, 1), 0.5, np.float32))
        assert model.entered.wait(timeout=30)
        values = [i / 10 for i in range(6)]
        futures = [batcher.submit(np.full((2, 2, 1), v, np.float32)) for v in values]
        model.open.set()
        for v, future in zip(values, futures):
            np.testing.assert_allclose(future.result(timeout=30), [v, 1 - v], atol=1e-6)
        assert first.result(timeout=30)[0] == pytest.approx(0.5)
        # 1 alone, then 4 (padded to 4) and 2 (padded to 2) of the 6 that waited.
        assert model.calls == [1, 4, 2]
        assert batcher.stats.max_batch == 4 and batcher.stats.batches == 3
    finally:
        model.open.set()
        batcher.close()


def test_batcher_passes_model_errors_to_every_request():
    class Broken:
        def predict_on_batch(self, batch):
            raise RuntimeError("boom")

    batcher = Batcher(Broken())
    try:
        future = batcher.submit(np.zeros((2, 2, 1), np.float32))
        with pytest.raises(RuntimeError, match="boom"):
            future.result(timeout=30)
        cancelled: Future = batcher.submit(np.zeros((2, 2, 1), np.float32))
        cancelled.cancel()  # may or may not win the race; the worker must survive either way
        assert isinstance(batcher.submit(np.zeros((2, 2, 1), np.float32)).exception(timeout=30), RuntimeError)
    finally:
        batcher.close()


def test_bucket_sizes():
    assert [_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 16)] == [1, 2, 4, 4, 8, 8, 16, 16]
