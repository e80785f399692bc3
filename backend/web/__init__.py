"""The web process: one ASGI app (Socket.IO on python-socketio's AsyncServer, REST on FastAPI) and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import socketio
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from backend import compat
from backend.logging_setup import peer_logger
from backend.publisher import Publisher
from backend.redis_client import make_async_redis, make_redis
from backend.settings import Settings, load_settings
from backend.web.state import WebState

log = logging.getLogger(__name__)

# Clients only send connect auth and `subscribe`: anything bigger is hostile.
MAX_CLIENT_PACKET_BYTES = 16 * 1024
RESTART_PAUSE_S = 1.0
# Engine.IO's ping: every PING_INTERVAL_S a PING to each client, closed without its PONG within PING_TIMEOUT_S.
PING_INTERVAL_S = 25
PING_TIMEOUT_S = 20


class WebApp:
    """The ASGI app a server runs; `.state` (the WebState) and `.api` (the FastAPI app) are there for tests."""

    def __init__(self, asgi: ASGIApp, state: WebState, api: FastAPI) -> None:
        """Serve ASGI (the outermost middleware); STATE and API are what it was built from."""
        self.asgi, self.state, self.api = asgi, state, api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the connection to the middleware chain."""
        await self.asgi(scope, receive, send)


def create_app(
    settings: Settings | None = None, ping_interval_s: float = PING_INTERVAL_S, ping_timeout_s: float = PING_TIMEOUT_S
) -> WebApp:
    """Create and configure the web app (the ping's seconds are arguments for the tests only)."""
    settings = settings or load_settings()
    from backend.web import api, charts_api, connection_limits, dashboard, ops, rate_limits, security
    from backend.web.broadcast import Broadcaster
    from backend.web.clients import SignalsNamespace
    from backend.web.ping_wheel import PingWheel
    from backend.web.relay import Relay

    compat.harden_socketio()
    sio = socketio.AsyncServer(
        async_mode="asgi",
        # None: same origin only (python-engineio reads [] as "no CORS check at all").
        cors_allowed_origins=list(settings.cors_origins) or None,
        max_http_buffer_size=MAX_CLIENT_PACKET_BYTES,
        ping_interval=ping_interval_s,
        ping_timeout=ping_timeout_s,
        logger=peer_logger("socketio.server"),
        engineio_logger=peer_logger("engineio.server"),
    )
    client = make_redis(settings.redis_url)
    aredis = make_async_redis(settings.redis_url)
    # FAST_BROADCAST: live signals framed once and written to idle websockets; with it on or off, a client
    # that falls behind past SLOW_CLIENT_MAX_PACKETS / _BYTES is cut (backend/web/broadcast.py).
    broadcaster = Broadcaster.from_settings(sio, settings)
    relay = Relay(sio, settings, aredis, broadcaster)
    namespace = SignalsNamespace(relay, aredis, settings.auth_tokens, settings.subscribe_rate_limit)
    sio.register_namespace(namespace)
    state = WebState(
        settings=settings,
        redis=client,
        aredis=aredis,
        sio=sio,
        relay=relay,
        namespace=namespace,
        publisher=Publisher.from_settings(settings, client),
        publish_limit=rate_limits.PublishLimit(settings, client),
        sweeper=connection_limits.SessionSweeper(sio, settings.connect_timeout),
        signals_cache=api.BodyCache(),
        # One timer pings every client (FAST_BROADCAST: straight to idle websockets), not a task per client.
        ping_wheel=PingWheel(sio, settings.fast_broadcast),
    )

    fastapi_app = FastAPI(
        title="Quantum Signals",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=_lifespan(state),
    )
    fastapi_app.state.qs = state
    for module in (api, charts_api, ops, dashboard):
        fastapi_app.include_router(module.router)
    dashboard.mount_static(fastapi_app)

    # socketio.ASGIApp hands lifespan events to FastAPI (it has no on_startup/on_shutdown of its own).
    served = socketio.ASGIApp(sio, other_asgi_app=fastapi_app)
    # The HTTP intake takes a whole signal, up to MAX_SIGNAL_BYTES; every other body is a client packet.
    body_limits = {connection_limits.INTAKE_PATH: max(MAX_CLIENT_PACKET_BYTES, settings.max_signal_bytes)}
    served = connection_limits.ConnectionLimits(
        served, settings.max_connections_per_ip, MAX_CLIENT_PACKET_BYTES, settings.socket_timeout, body_limits
    )
    # Outermost: a bad Host is answered before Socket.IO or anything else runs.
    served = security.HostCheck(served, settings.allowed_hosts)
    return WebApp(served, state, fastapi_app)


def _lifespan(state: WebState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan: the relay, the session sweeper and the ping wheel run while the app serves; Redis clients close
    after."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(supervise("relay", state.relay.run), name="qs-relay"),
            asyncio.create_task(supervise("session sweeper", state.sweeper.run), name="qs-session-sweeper"),
            asyncio.create_task(supervise("ping wheel", state.ping_wheel.run), name="qs-ping-wheel"),
        ]
        try:
            yield
        finally:
            state.relay.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await state.namespace.stop()
            await state.aredis.aclose()
            state.redis.close()

    return lifespan


async def supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run RUN until it returns; when it raises, log it and run it again (readiness sees the relay's and the ping
    wheel's gaps)."""
    while True:
        try:
            await run()
            return
        except Exception:  # a background task must outlive its own bugs (log.exception keeps the traceback)
            log.exception("%s task failed; restarting it", name)
        await asyncio.sleep(RESTART_PAUSE_S)
