"""What the web process holds while it serves: settings, Redis clients, the Socket.IO server and its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
import socketio
from fastapi import Request

from backend.settings import Settings

if TYPE_CHECKING:
    from backend.publisher import Publisher
    from backend.web.clients import SignalsNamespace
    from backend.web.relay import Relay


@dataclass
class WebState:
    """One app's shared objects; REST handlers reach it through get_state, tests through app.state."""

    settings: Settings
    redis: redis.Redis  # sync, decoded: the threadpool REST handlers and the sync readers in backend/
    aredis: redis.asyncio.Redis  # async, decoded: the relay, the replay and the Socket.IO handlers
    sio: socketio.AsyncServer
    relay: Relay | None = None
    namespace: SignalsNamespace | None = None
    publisher: Publisher | None = None
    publish_limit: Any = None  # backend.web.rate_limits.PublishLimit
    signals_cache: Any = None  # backend.web.api's cache of /api/signals bodies
    sweeper: Any = None  # backend.web.connection_limits.SessionSweeper
    # The redis_down/redis_up memory (backend/web/ops.py): the last Redis error logged, None while it answers.
    redis_error: dict = field(default_factory=lambda: {"last": None})


def get_state(request: Request) -> WebState:
    """FastAPI dependency: the WebState of the app serving REQUEST."""
    return request.app.state.qs
