"""Every way of running the web app relays: `python asgi.py`, another ASGI server of create_app, an in-process app."""

import socket
import sys

import pytest
import requests
from starlette.testclient import TestClient

from harness.polling import wait_until
from harness.ports import free_port
from harness.processes import ServerProcess


def test_start_logs_no_deprecation_warning(web):
    # The relay subscribes after the app is built and uvicorn has started: once its line is in the log, the
    # start-up part of the log is complete.
    wait_until(lambda: "relay subscribed" in web.log(), message="the relay's start line")

    assert "Deprecat" not in web.log(), web.log()[:3000]
    assert "Traceback" not in web.log(), web.log()[:3000]


def test_another_asgi_server_of_create_app_relays(base_env, tmp_path, connect, publisher):
    # What any ASGI server does with the factory (here uvicorn's own command line, its defaults): the lifespan
    # starts the relay, so nothing but create_app is needed.
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", "backend.web:create_app", "--port", str(port)]
    server = ServerProcess(args, base_env, "other-server", tmp_path)
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


def test_the_lifespan_runs_through_socketio_and_the_middlewares(app, publisher):
    # python-socketio's ASGIApp hands lifespan events to FastAPI only while it has no on_startup/on_shutdown of
    # its own, and every middleware must pass them on: the relay runs exactly while the server does.
    relay = app.state.relay
    assert not relay.alive(), "the relay ran before the server started the app"

    with TestClient(app) as client:
        wait_until(relay.ready, 10, message="the relay subscribed by the lifespan")
        stored = publisher.publish_signal({"type": "SELL", "price": 2, "symbol": "ETH/USDT", "id": "lifespan"})
        wait_until(lambda: relay.last_seq == stored["seq"], message="the relay at the published seq")
        ready = client.get("/readyz")

    assert ready.status_code == 200 and ready.json()["seq"] == stored["seq"]
    assert not relay.subscribed, "the relay still runs after shutdown"


@pytest.mark.parametrize(
    "line",
    [
        b"GET /api/signals?token=hunter2hunter2 HTTP/1.1 junk junk\r\n\r\n",
        b"\x16\x03\x01 /api/signals?token=hunter2hunter2\r\n\r\n",
        b"GET /api/signals?token=hunter2hunter2" + b"A" * 20_000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["bad-request-line", "tls-hello", "huge-target"],
)
def test_malformed_request_lines_log_no_token_and_few_lines(web, line):
    wait_until(lambda: "relay subscribed" in web.log(), message="the relay's start line")
    before = len(web.log().splitlines())
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", web.port), timeout=5) as conn:
            conn.sendall(line)
            conn.settimeout(5)
            try:
                conn.recv(4096)
            except (TimeoutError, ConnectionResetError):
                pass  # closed or answered: either way the server has handled the line
    requests.get(web.url + "/healthz", timeout=5)  # a request after the junk: its lines would be in by now

    lines = web.log().splitlines()[before:]
    assert "hunter2" not in web.log()
    assert len(lines) < 10, "\n".join(lines[:30])
    assert all(len(line) < 400 for line in lines), lines
