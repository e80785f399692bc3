"""Serving the web app on eventlet: open-file limit, accept backlog, socket timeout, library patches."""

from __future__ import annotations

import logging
import resource

from backend import compat

log = logging.getLogger(__name__)

ACCEPT_BACKLOG = 2048


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: each client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def serve(app, port: int) -> None:
    """Serve APP (Flask with the Socket.IO middleware) on all interfaces at PORT until stopped."""
    import eventlet
    import eventlet.wsgi

    files = raise_open_file_limit()
    # Never negotiate permessage-deflate: compressing each signal once per client costs more than it
    # saves (1,000 clients × 20/s went from tens of ms to seconds, docs/benchmarks.md); Node's socket.io
    # leaves it off by default for the same reason.
    compat.disable_permessage_deflate()
    # A stranger's bad polling POST made Engine.IO close its session and wait for a GET that never came,
    # parking the request and its socket for ever (backend/compat.py).
    compat.engineio_polling_close_never_waits()
    if app.config["SETTINGS"].fast_broadcast:
        # The broadcast fast path must see each websocket's writer and OS socket (backend/web/broadcast.py).
        compat.engineio_websocket_lanes()
    sock = eventlet.listen(("0.0.0.0", port), backlog=ACCEPT_BACKLOG)
    # eventlet's default pool holds 1,024 connections; let the file limit decide instead.
    max_connections = max(1024, files - 64)
    log.info("serving on port %d (up to %d connections)", port, max_connections)
    # Each socket read of a request (line, headers, body; idle keep-alive) gives up after SOCKET_TIMEOUT, so a
    # client that sends half a request cannot hold a connection for ever. It must stay above Engine.IO's
    # ping_interval + ping_timeout (25 + 20 s): a healthy client is only guaranteed to send something (its
    # pong, on the websocket or in a polling POST) that often. python-engineio also sets 45 s on websockets.
    socket_timeout = app.config["SETTINGS"].socket_timeout
    eventlet.wsgi.server(sock, app, max_size=max_connections, log_output=False, socket_timeout=socket_timeout)
