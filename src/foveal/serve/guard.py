"""Limits that keep slow, stalled or greedy clients from tying up ``foveal serve``.

uvicorn closes idle keep-alive connections and caps header size, but it waits forever for a
request's headers and body: a client that opens a connection and sends half a request holds a
socket and a task until it gives up, and a few hundred such clients hold the server. So:

* **headers**: :class:`GuardedH11Protocol` (uvicorn's h11 protocol plus a timer) closes a
  connection whose next request's headers are not complete ``header_timeout`` seconds after the
  connection opened or the previous answer was sent;
* **body**: :class:`BodyTimeout` (ASGI middleware) answers 408 and closes the connection when a
  request body pauses longer than ``idle`` seconds or is not complete ``total`` seconds after
  the headers, as when a request declares more bytes than it sends;
* **connections**: uvicorn's ``limit_concurrency`` answers 503 to requests beyond
  ``max_connections``, and the protocol drops connections beyond twice that at once.

:func:`server_config` builds the ``uvicorn.Config`` with all of it; ``foveal serve`` and the test
server use it.

Example:
    >>> config = server_config(app, header_timeout=10, max_connections=100)  # doctest: +SKIP
    >>> uvicorn.Server(config).run(sockets=[sock])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from foveal.serve.limits import (
    BODY_IDLE_TIMEOUT,
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    KEEP_ALIVE,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
)

_ENV_HEADER_TIMEOUT = "FOVEAL_SERVE_HEADER_TIMEOUT"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers and a hard connection cap.

    The limits come from the ``uvicorn.Config`` (set by :func:`server_config`); worker processes
    started by uvicorn read the header timeout from ``FOVEAL_SERVE_HEADER_TIMEOUT``.
    """

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "foveal_header_timeout", None)
                                    or os.environ.get(_ENV_HEADER_TIMEOUT) or HEADER_TIMEOUT)
        cap = getattr(config, "limit_concurrency", None)
        self.hard_cap = 2 * cap if cap else None  # twice the point where uvicorn starts answering 503
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_cycle: Any = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.hard_cap is not None and len(self.connections) > self.hard_cap:
            # Past twice the 503 limit: even answering would cost more than the caller deserves.
            transport.abort()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._disarm_if_request_started()

    def on_response_complete(self) -> None:
        self._arm()  # the next request's headers get their own deadline
        super().on_response_complete()
        self._disarm_if_request_started()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._waiting_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _disarm_if_request_started(self) -> None:
        # uvicorn makes a new request/response cycle when a request's headers are complete.
        if self._header_timer is not None and self.cycle is not self._waiting_cycle:
            self._disarm()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_cycle and not self.transport.is_closing():
            self.logger.info("closing a connection that sent no complete request headers in %gs",
                             self.header_timeout)
            self.transport.close()


class BodyTimeout:
    """ASGI middleware: a request body must keep arriving and be complete in time, else 408.

    Each read of the body waits at most ``idle`` seconds, and all of them together end at most
    ``total`` seconds after the request's headers arrived. The 408 answer says
    ``Connection: close``, so the server drops the connection and its half-sent body.
    """

    def __init__(self, app: Any, idle: float = BODY_IDLE_TIMEOUT, total: float = BODY_TIMEOUT) -> None:
        self.app, self.idle, self.total = app, idle, total

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.total
        body_done = False

        async def timed() -> dict:
            nonlocal body_done
            if body_done:  # e.g. a streaming response listening for the client to leave: no deadline
                return await receive()
            wait = min(self.idle, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
                body_done = message["type"] != "http.request" or not message.get("more_body", False)
                return message
            except asyncio.TimeoutError:
                from starlette.exceptions import HTTPException

                # Raised inside the endpoint's read, so the app's handlers answer it.
                raise HTTPException(408, f"request body not received in time (pauses of at most {self.idle:g} s, "
                                         f"{self.total:g} s in all)", headers={"Connection": "close"}) from None

        await self.app(scope, timed, send)


def server_config(app: Any, *, header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                  **options: Any):
    """A ``uvicorn.Config`` for ``app`` with foveal's limits (``options`` go to uvicorn)."""
    import uvicorn

    options.setdefault("timeout_keep_alive", KEEP_ALIVE)
    # uvicorn answers 503 once open connections reach limit_concurrency, counting the new one.
    config = uvicorn.Config(app, http=GuardedH11Protocol, limit_concurrency=max_connections + 1,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES, **options)
    config.foveal_header_timeout = header_timeout
    return config


def worker_options(header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """``uvicorn.run`` keyword arguments and environment variables that give uvicorn's worker
    processes the same limits as :func:`server_config` (a worker cannot be handed a Config)."""
    options = {"http": GuardedH11Protocol, "limit_concurrency": max_connections + 1,
               "h11_max_incomplete_event_size": MAX_HEADER_BYTES, "timeout_keep_alive": KEEP_ALIVE}
    return options, {_ENV_HEADER_TIMEOUT: str(header_timeout)}

