"""Loopback ports and sockets for the servers a test or benchmark starts."""

from __future__ import annotations

import socket

# The product picks a port the same way when `make run` embeds a Redis: one definition for both.
from backend.embedded_redis import free_port

__all__ = ["free_port", "is_closed"]


def is_closed(sock: socket.socket) -> bool:
    """True once the server has closed SOCK (EOF or reset); never blocks."""
    try:
        return sock.recv(1024, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
