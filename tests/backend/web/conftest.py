"""Web fixtures: the app in this process (starlette's TestClient; a real uvicorn in a thread with python-socketio
clients), and headless Chromium.

Other engineers' fixtures go at the end of this file, each with a docstring saying what it yields.
"""

from __future__ import annotations

import contextlib
import os
import threading

import pytest
import socketio
import uvicorn
from starlette.testclient import TestClient

from backend.settings import Settings
from harness import contract
from harness.clients import RecordingClient
from harness.polling import wait_until
from harness.ports import free_port
from harness.processes import WebServer

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


class LiveServer:
    """A real uvicorn serving APP (backend.web.server's config) in a thread of the test process, on a free port."""

    def __init__(self, app):
        """Serve APP (from create_app) on 127.0.0.1; start() returns once it accepts connections."""
        from backend.web.server import uvicorn_config

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, app.state.settings, host="127.0.0.1", port=self.port))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> LiveServer:
        """Start serving (the lifespan runs: relay and sweeper) and wait until the relay is subscribed."""
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 10, message="uvicorn started")
        assert self.thread.is_alive(), "uvicorn stopped at start (its log says why)"
        wait_until(self.app.state.relay.ready, 10, message="the relay subscribed")
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (the lifespan stops the relay) and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "uvicorn did not stop within 15 s"


class LiveSocket(RecordingClient):
    """A python-socketio client of a LiveServer: every event recorded in arrival order; a refusal kept, not raised."""

    def __init__(self, url: str, auth: dict | None = None, **kwargs):
        """Connect to URL with AUTH; when the server refuses, `connected` is False and `connect_error` says why."""
        try:
            super().__init__(url, auth=auth, **kwargs)
        except socketio.exceptions.ConnectionError as exc:
            self._record("connect_error", str(exc))

    @property
    def connected(self) -> bool:
        """True while the `/` namespace is connected."""
        return self.sio.connected

    def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> list:
        """Wait until COUNT EVENTs arrived; return them all."""
        return wait_until(lambda: len(self.of(event)) >= count and self.of(event), timeout, message=f"{count} {event}")

    def emit(self, event: str, data) -> object:
        """Emit EVENT and return the server's acknowledgement (a subscribe's, checked against the contract)."""
        answer = self.sio.call(event, data, timeout=5)
        if event == "subscribe":
            contract.record("subscribe_ack", answer)
        return answer


@pytest.fixture
def make_app(redis_url):
    """Factory: the web app (not started) on the suite's Redis, settings read from ENV (keyword arguments)."""
    from backend.web import create_app

    def make(**env):
        return create_app(Settings.from_env({"REDIS_URL": redis_url, **env}))

    return make


@pytest.fixture
def app(make_app):
    """The web app with the default settings."""
    return make_app()


@pytest.fixture
def client(app):
    """starlette's TestClient of `app`, started (the lifespan runs: relay subscribed); closed after the test."""
    with TestClient(app) as test_client:
        wait_until(app.state.relay.ready, 10, message="the relay subscribed")
        yield test_client


@pytest.fixture
def live_server(request):
    """Factory: a real uvicorn serving OF (default: `app`; with ENV: a new app of those settings) in this process;
    each app is served once; all are stopped after the test."""
    servers: dict[int, LiveServer] = {}

    def serve(of=None, **env) -> LiveServer:
        target = of or (request.getfixturevalue("make_app")(**env) if env else request.getfixturevalue("app"))
        if id(target) not in servers:
            servers[id(target)] = LiveServer(target)
            servers[id(target)].start()
        return servers[id(target)]

    yield serve
    for server in servers.values():
        server.stop()


@pytest.fixture
def sio_client(live_server):
    """Factory: python-socketio clients (websocket) of a live server of OF (default: `app`) with AUTH; closed after."""
    sockets: list[LiveSocket] = []

    def connect(auth: dict | None = None, of=None, **kwargs) -> LiveSocket:
        socket = LiveSocket(live_server(of).url, auth=auth, **kwargs)
        sockets.append(socket)
        return socket

    yield connect
    for socket in sockets:
        socket.close()


@pytest.fixture
def make_client(make_app):
    """Factory: a started TestClient of make_app(**ENV) (the lifespan runs: relay subscribed); all closed after."""
    with contextlib.ExitStack() as stack:

        def make(**env) -> TestClient:
            app = make_app(**env)
            test_client = stack.enter_context(TestClient(app))
            wait_until(app.state.relay.ready, 10, message="the relay subscribed")
            return test_client

        yield make
