"""The one place that reaches into libraries' private APIs (docs/architecture.md, "compat fence").

Each hook says what it touches and why; tests/backend/test_compat.py fails naming the hook when a
pinned library changes underneath it. Nothing else in the project may touch a private attribute.
"""

from __future__ import annotations


def engineio_socket(server, sid: str, namespace: str = "/"):
    """The Engine.IO socket of Socket.IO client SID, or None when it is gone.

    Reaches into python-engineio's `Server.sockets` (a dict eio_sid → Socket): no public API tells
    how much is queued for one client, and the replay paces itself by that.
    """
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    return server.eio.sockets.get(eio_sid) if eio_sid else None


def engineio_queue_size(server, sid: str, namespace: str = "/") -> int:
    """Packets waiting in the Engine.IO send queue of Socket.IO client SID (0 when gone).

    Reaches into python-engineio's `Socket.queue` (an eventlet/threading Queue).
    """
    socket = engineio_socket(server, sid, namespace)
    return socket.queue.qsize() if socket is not None else 0


def disable_permessage_deflate() -> None:
    """Make eventlet's websocket server never negotiate permessage-deflate.

    Replaces eventlet's private `WebSocketWSGI._negotiate_permessage_deflate` with one that accepts
    nothing: eventlet has no option for it, and per-client compression of every broadcast dominated
    the relay's profile (docs/benchmarks.md).
    """
    from eventlet import websocket

    websocket.WebSocketWSGI._negotiate_permessage_deflate = lambda self, extensions: None
