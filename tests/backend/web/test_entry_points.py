"""Every way of running the web app relays: `python wsgi.py`, another server of `wsgi:app`, an in-process app."""

import sys

import pytest
import requests

from backend.settings import Settings
from tests.harness.polling import wait_until
from tests.harness.ports import free_port
from tests.harness.processes import ServerProcess

# What `gunicorn -k eventlet wsgi:app` does, short of gunicorn: patch, import wsgi:app, serve it with eventlet.
OTHER_SERVER = """
import sys, eventlet
eventlet.monkey_patch()
import eventlet.wsgi
from wsgi import app
eventlet.wsgi.server(eventlet.listen(("127.0.0.1", int(sys.argv[1]))), app, log_output=False)
"""


def test_start_logs_no_deprecation_warning(web):
    # Eventlet warns when it is imported, the first thing wsgi.py does; the relay subscribes after the app is
    # built. So once the relay's line is in the log, the start-up part of the log is complete.
    wait_until(lambda: "relay subscribed" in web.log(), message="the relay's start line")

    assert "Deprecat" not in web.log(), web.log()[:3000]


def test_another_server_of_wsgi_app_relays(base_env, tmp_path, connect, publisher):
    port = free_port()
    server = ServerProcess([sys.executable, "-c", OTHER_SERVER, str(port)], base_env, "other-server", tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        server.start()
        server.wait_for(lambda: _ready(url), 30, "ready")
        client = connect(url)
        wait_until(lambda: client.of("welcome"), message="welcome")

        stored = publisher.publish_signal({"type": "BUY", "price": 5, "symbol": "BTC/USDT", "id": "other-server"})

        assert client.wait_signals(1) == [stored]
    finally:
        server.stop()


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def in_process_app(redis_url):
    """The app as in-process tests build it (threading, no message queue), its relay started; stopped after."""
    from backend.web import create_app

    app = create_app(
        test_config={"SETTINGS": Settings.from_env({"REDIS_URL": redis_url}), "SOCKETIO_ASYNC_MODE": "threading"}
    )
    app.extensions["qs_relay"].start()
    yield app
    app.extensions["qs_relay"].stop()


def test_in_process_app_needs_only_its_relay_started(in_process_app, publisher):
    from backend.web import socketio

    client = socketio.test_client(in_process_app, auth={"since": 0, "symbols": ["eth/usdt"]})
    received: list[dict] = []

    def of(event: str) -> list:
        received.extend(client.get_received())
        return [packet["args"][0] for packet in received if packet["name"] == event]

    try:
        assert client.is_connected()
        wait_until(lambda: of("welcome"), message="welcome")
        # Threads, not green threads: the client joins its rooms a moment after welcome, maybe after a signal.
        states = socketio.server.namespace_handlers["/"].clients.values()
        wait_until(lambda: all(state.live for state in states), message="the client live")
        stored = publisher.publish_signal({"type": "SELL", "price": 2, "symbol": "ETH/USDT", "id": "in-process"})
        publisher.publish_signal({"type": "SELL", "price": 3, "symbol": "BTCUSDT", "id": "other symbol"})

        wait_until(lambda: of("new_signal"), message="the signal")
        assert in_process_app.test_client().get("/readyz").status_code == 200
        assert of("new_signal") == [stored]
    finally:
        client.disconnect()
