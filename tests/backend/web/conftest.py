"""Web fixtures: the app in this process (Flask and Flask-SocketIO test clients), and headless Chromium."""

from __future__ import annotations

import json
import os

import pytest

from backend.settings import Settings
from tests.harness.polling import wait_until
from tests.harness.processes import WebServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (the system's, never a downloaded one)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run apt-get install -y chromium (make test does: .ci/system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page (empty localStorage) at 1280x800; uncaught page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def restart_web(tmp_path):
    """Factory: a new web process on a stopped one's port with its environment; stopped after the test."""
    servers: list[WebServer] = []

    def restart(old: WebServer) -> WebServer:
        env = {k: v for k, v in old.env.items() if k != "PORT"}
        server = WebServer(env, tmp_path, name=f"{old.name}-restarted{len(servers)}", port=old.port)
        servers.append(server)  # before start, so a failed start is still cleaned up
        return server.start()

    yield restart
    for server in servers:
        server.stop()


class InProcessSocket:
    """Flask-SocketIO's test client, every event it received kept in order (get_received would pop them)."""

    def __init__(self, test_client):
        """Wrap a connected (or refused) SocketIOTestClient."""
        self.test_client = test_client

    @property
    def connected(self) -> bool:
        """True while the `/` namespace is connected."""
        return self.test_client.is_connected()

    def of(self, event: str) -> list:
        """First arguments of every EVENT received so far."""
        # The server's threads append to `queue`; a snapshot of it never races them, popping would.
        return [packet["args"][0] for packet in list(self.test_client.queue) if packet["name"] == event]

    def signals(self) -> list[dict]:
        """The new_signal payloads received so far."""
        return self.of("new_signal")

    def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> list:
        """Wait until COUNT EVENTs arrived; return them all."""
        return wait_until(lambda: len(self.of(event)) >= count and self.of(event), timeout, message=f"{count} {event}")

    def emit(self, event: str, data) -> object:
        """Emit EVENT and return the server's acknowledgement."""
        return self.test_client.emit(event, data, callback=True)

    def close(self) -> None:
        """Disconnect if connected."""
        if self.connected:
            self.test_client.disconnect()


@pytest.fixture
def make_app(redis_url):
    """Factory: the web app in this process on the suite's Redis, settings read from ENV (keyword arguments)."""
    from backend.web import create_app

    def make(**env):
        settings = Settings.from_env({"REDIS_URL": redis_url, **env})
        # Threading: no eventlet monkey patching in the pytest process. The relay runs once sio_client needs it.
        return create_app(test_config={"SETTINGS": settings, "SOCKETIO_ASYNC_MODE": "threading"})

    return make


@pytest.fixture
def app(make_app):
    """The web app with the default settings."""
    return make_app()


@pytest.fixture
def client(app):
    """Flask's HTTP test client of `app`."""
    return app.test_client()


@pytest.fixture
def sio_client(request):
    """Factory: Flask-SocketIO test clients of OF (default: `app`) with AUTH; its relay runs until the test ends."""
    # One app per test: create_app re-binds the module's socketio object to the newest app.
    from backend.web import socketio

    sockets: list[InProcessSocket] = []
    relays = {}  # relay -> (its thread, its app)

    def connect(auth: dict | None = None, of=None, **kwargs) -> InProcessSocket:
        target = of or request.getfixturevalue("app")
        relay = target.extensions["qs_relay"]
        if relay not in relays:
            # Started here rather than by relay.start() to hold the thread: it is joined after the test, so a
            # stopping relay never emits into the next test's app (the socketio object is shared).
            relays[relay] = (socketio.start_background_task(relay.run), target)
            wait_until(relay.ready, 10, message="the relay subscribed")
        socket = InProcessSocket(socketio.test_client(target, auth=auth, **kwargs))
        sockets.append(socket)
        return socket

    yield connect
    for socket in sockets:
        socket.close()
    for relay, (_thread, target) in relays.items():
        relay.stop()
        # A live message wakes the relay's one-second poll, so it sees the stop now (no client is left to get it).
        channel = target.config["SETTINGS"].signal_channel
        target.extensions["qs_redis"].publish(channel, json.dumps({"type": "BUY", "price": 1}))
    for thread, _target in relays.values():
        thread.join(5)
