"""Serving the web app: uvicorn on uvloop and httptools, the open-file limit, the accept backlog."""

from __future__ import annotations

import logging
import resource

import uvicorn
from starlette.types import ASGIApp

from backend import compat
from backend.logging_setup import configure_logging
from backend.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

ACCEPT_BACKLOG = 2048
# On SIGTERM, the time open requests (a long-poll waits up to 25 s) get before their connections are closed.
GRACEFUL_SHUTDOWN_S = 5


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: each client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def uvicorn_config(app: ASGIApp, settings: Settings, host: str = "0.0.0.0", port: int | None = None) -> uvicorn.Config:
    """How uvicorn serves APP with SETTINGS on HOST:PORT (PORT: settings.port); tests serve through it too."""
    return uvicorn.Config(
        app,
        host=host,
        port=settings.port if port is None else port,
        loop="uvloop",
        # httptools, with a deadline on each request head (slowloris, half requests): uvicorn has none.
        http=compat.header_deadline_protocol(settings.socket_timeout),
        # uvicorn's websockets-sansio protocol, reachable from its scope: the broadcast fast path writes to it.
        ws=compat.websocket_protocol_class(),
        # Never negotiate permessage-deflate: compressing each signal once per client costs more than it
        # saves (docs/benchmarks.md); Node's socket.io leaves it off by default for the same reason.
        ws_per_message_deflate=False,
        # No websocket-level keepalive: Engine.IO already pings every client (25 s) and closes it after 20 s
        # without an answer. uvicorn's own ping on top cost a third of the idle CPU at 10,000 clients
        # (docs/benchmarks.md).
        ws_ping_interval=None,
        # Every line goes through backend/logging_setup.py's handlers and filter, not uvicorn's own.
        log_config=None,
        access_log=False,
        # uvicorn would trust X-Forwarded-For from 127.0.0.1: a stranger on loopback would dodge the per-IP cap.
        proxy_headers=False,
        server_header=False,
        backlog=ACCEPT_BACKLOG,
        # An idle keep-alive connection is closed after SOCKET_TIMEOUT, as every other read of a request.
        timeout_keep_alive=settings.socket_timeout,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
    )


def main() -> None:
    """`python asgi.py`: serve the web app on all interfaces at $PORT until stopped."""
    configure_logging()
    try:
        settings = load_settings()
        from backend.web import create_app

        app = create_app(settings)
    except ConfigError as exc:  # a clear line naming the variable, not a traceback
        raise SystemExit(f"configuration error: {exc}") from None
    files = raise_open_file_limit()
    log.info("serving on port %d (open-file limit %d)", settings.port, files)
    uvicorn.Server(uvicorn_config(app, settings)).run()
