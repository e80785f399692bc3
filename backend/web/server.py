"""Serving the web app on eventlet: open-file limit, accept backlog, websocket compression policy."""

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
    sock = eventlet.listen(("0.0.0.0", port), backlog=ACCEPT_BACKLOG)
    # eventlet's default pool holds 1,024 connections; let the file limit decide instead.
    max_connections = max(1024, files - 64)
    log.info("serving on port %d (up to %d connections)", port, max_connections)
    eventlet.wsgi.server(sock, app, max_size=max_connections, log_output=False)
