"""Loopback ports for the servers a test or benchmark starts."""

from __future__ import annotations

# The product picks a port the same way when `make run` embeds a Redis: one definition for both.
from backend.embedded_redis import free_port

__all__ = ["free_port"]
