"""The web process: Flask app factory with Flask-SocketIO on eventlet and the relay."""

from __future__ import annotations

import socketio as python_socketio
from flask import Flask
from flask_socketio import SocketIO

from backend import compat
from backend.logging_setup import peer_logger
from backend.redis_client import make_redis, redis_options, strip_tls_query
from backend.settings import Settings, load_settings

socketio = SocketIO()

# Clients only send connect auth and `subscribe`: anything bigger is hostile.
MAX_CLIENT_PACKET_BYTES = 16 * 1024


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the web app."""
    app = Flask(__name__)
    settings = (test_config or {}).get("SETTINGS") or load_settings()
    app.config.from_mapping(SETTINGS=settings, SOCKETIO_ASYNC_MODE=None)
    app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)
    # Flask-SocketIO's test client refuses a message queue: in-process tests (threading) run without one.
    app.config.setdefault("SOCKETIO_MESSAGE_QUEUE", app.config["SOCKETIO_ASYNC_MODE"] != "threading")

    client = make_redis(settings.redis_url)
    app.extensions["qs_redis"] = client
    init_socketio(app, settings)

    from backend.web import api, charts_api, dashboard, ops
    from backend.web.broadcast import Broadcaster
    from backend.web.clients import SignalsNamespace
    from backend.web.relay import Relay

    # FAST_BROADCAST: live signals written once-framed to idle websockets (backend/web/broadcast.py); the
    # eventlet hook it needs is installed by backend/web/server.py.
    # Only on eventlet: elsewhere (the threading mode of in-process tests) no websocket has a lane to write to.
    fast = settings.fast_broadcast and socketio.server.eio.async_mode == "eventlet"
    relay = Relay(socketio, settings, client, Broadcaster(socketio) if fast else None)
    app.extensions["qs_relay"] = relay
    # After init_socketio: registered on this app's server, not queued for every later init_app.
    socketio.on_namespace(SignalsNamespace(relay, client, settings.auth_tokens, settings.subscribe_rate_limit))
    app.register_blueprint(api.bp)
    app.register_blueprint(charts_api.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(ops.bp)

    # Transport limits (per-IP connection cap, request body size and deadline; the session sweeper that
    # start_background_tasks starts): a WSGI wrapper around Socket.IO too, so /socket.io/ requests are bounded.
    from backend.web import connection_limits

    connection_limits.install(app, socketio, settings, MAX_CLIENT_PACKET_BYTES)

    from backend.web import rate_limits, security

    rate_limits.init_app(app, settings)
    # Last, so its WSGI wrapper is outermost: the Host check runs before Socket.IO or anything else.
    security.init_app(app)
    return app


def start_background_tasks(app: Flask) -> None:
    """Start the relay and the session sweeper of APP, each once: what a process serving APP must run.

    wsgi.py calls it for every server that serves `wsgi:app`. create_app never does, so the `flask` CLI and
    in-process tests run none; such a test that needs clients welcomed (test_client with "SOCKETIO_ASYNC_MODE":
    "threading") calls this, or just app.extensions["qs_relay"].start(), and qs_relay.stop() when done.
    """
    app.extensions["qs_relay"].start()
    app.extensions["qs_session_sweeper"].start()


def init_socketio(app: Flask, settings: Settings) -> None:
    """Attach Flask-SocketIO; with SOCKETIO_MESSAGE_QUEUE (the default when served), over Redis (TLS included)."""
    compat.harden_socketio()
    manager = None
    if app.config["SOCKETIO_MESSAGE_QUEUE"]:
        manager = python_socketio.RedisManager(
            strip_tls_query(settings.redis_url),
            channel="flask-socketio",
            redis_options=redis_options(settings.redis_url),
        )
    socketio.init_app(
        app,
        # None picks eventlet in `python wsgi.py` and threading under the `flask` CLI; in-process tests
        # ask for threading.
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        client_manager=manager,
        cors_allowed_origins=list(settings.cors_origins) or None,
        max_http_buffer_size=MAX_CLIENT_PACKET_BYTES,
        logger=peer_logger("socketio.server"),
        engineio_logger=peer_logger("engineio.server"),
        ping_interval=25,
        ping_timeout=20,
    )
