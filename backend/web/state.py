"""What the web process holds while it serves: settings, Redis clients, the Socket.IO server and its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import socketio
from fastapi import Request
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from backend.settings import Settings

if TYPE_CHECKING:
    from backend.publisher import Publisher
    from backend.web.api import BodyCache
    from backend.web.clients import SignalsNamespace
    from backend.web.connection_limits import SessionSweeper
    from backend.web.ping_wheel import PingWheel
    from backend.web.rate_limits import PublishLimit
    from backend.web.relay import Relay


@dataclass
class WebState:
    """One app's shared objects; REST handlers reach it through get_state, tests through app.state."""

    settings: Settings
    # Classes imported by name: inside WebState, `redis` is this field, not the module.
    redis: Redis  # sync, decoded: the threadpool REST handlers and the sync readers in backend/
    aredis: AsyncRedis  # async, decoded: the relay, the replay and the Socket.IO handlers
    sio: socketio.AsyncServer
    relay: Relay
    namespace: SignalsNamespace
    publisher: Publisher
    publish_limit: PublishLimit
    sweeper: SessionSweeper
    # The cache of /api/signals bodies (backend/web/api.py); None serves every request afresh (bench/api_signals.py).
    signals_cache: BodyCache | None
    ping_wheel: PingWheel
    # The redis_down/redis_up memory (backend/web/ops.py): the last Redis error logged, None while it answers.
    redis_error: dict[str, str | None] = field(default_factory=lambda: {"last": None})


def get_state(request: Request) -> WebState:
    """FastAPI dependency: the WebState of the app serving REQUEST."""
    return request.app.state.qs
