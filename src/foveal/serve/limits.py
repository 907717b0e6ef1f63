"""The server's limits and the checks of ``--host`` and ``--port``, without importing a web stack.

``foveal serve --help`` shows these defaults, so they live apart from :mod:`foveal.serve.guard`
(which needs uvicorn). :func:`host_problem` refuses a malformed ``--host`` before any socket
or name lookup; :func:`listen_error` explains a failed ``bind`` by its real cause, so a wrong
address is not reported as a busy port.
"""

from __future__ import annotations

HEADER_TIMEOUT = 10.0  # seconds for a request's headers
BODY_IDLE_TIMEOUT = 10.0  # longest pause inside a request body
BODY_TIMEOUT = 60.0  # the whole body
MAX_CONNECTIONS = 100
MAX_HEADER_BYTES = 16 * 1024  # h11's buffer for an incomplete request head
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open
def listen_error(host: str, port: int, exc: OSError) -> Exception:
    """A one-line error for a failed ``bind``, blaming ``--host`` or ``--port`` as the cause is."""
    import errno
    import socket

    from foveal.errors import ConfigError

    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return ConfigError(f"cannot listen on {host}:{port}: {reason} (--host {host} is not an address of this "
                           "machine)", hint="use --host 127.0.0.1 (this machine only), 0.0.0.0 (every network "
                           "interface) or one of this machine's own addresses")
    if exc.errno == errno.EACCES:
        return ConfigError(f"cannot listen on {host}:{port}: {reason}",
                           hint="ports below 1024 need administrator rights: pick --port 1024 or above")
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"cannot listen on {host}:{port}: {reason}",
                           hint="pick another --port (0 picks a free one), or stop the program using it")
    return ConfigError(f"cannot listen on {host}:{port}: {reason}", hint="check --host and --port")


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot be an address to listen on, without asking the network; None if it may be."""
    import ipaddress
    import re

    if host in ("", "localhost"):
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", host):
        return f"{host!r} is not a valid IPv4 address"
    if "://" in host or "/" in host:
        return f"{host!r} is a URL or path, not an address (give only the address, e.g. 127.0.0.1)"
    if ":" in host:
        return f"{host!r} is not a valid address (give the port with --port, and IPv6 addresses without brackets)"
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", p) for p in labels):
        return f"{host!r} is not a valid host name or address"
    return None
