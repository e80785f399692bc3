"""The ping wheel (backend/web/ping_wheel.py): one timer pings every client, on a real uvicorn in this process.

Apps here ping every half second and wait half a second for the PONG (create_app's test-only arguments), so a
raw websocket or long-polling client sees several ping cycles, and engine.io's 1 s writer deadline, within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import requests
import websocket
from prometheus_client import REGISTRY

from backend.settings import Settings
from harness.polling import wait_until
from tests.chaos.hostile import raw_socketio

INTERVAL_S, TIMEOUT_S = 0.5, 0.5


@pytest.fixture
def ping_app(redis_url):
    """Factory: a web app pinging every INTERVAL_S with a PONG due within TIMEOUT_S; FAST is FAST_BROADCAST."""
    from backend.web import create_app

    def make(fast: str = "1"):
        settings = Settings.from_env({"REDIS_URL": redis_url, "FAST_BROADCAST": fast})
        return create_app(settings, ping_interval_s=INTERVAL_S, ping_timeout_s=TIMEOUT_S)

    return make


def on_loop(server, function, *args):
    """FUNCTION(*ARGS) run on the event loop of the LiveServer SERVER (awaited when it is a coroutine): its result."""

    async def run():
        result = function(*args)
        return await result if asyncio.iscoroutine(result) else result

    loop = next(iter(server.server.servers)).get_loop()
    return asyncio.run_coroutine_threadsafe(run(), loop).result(10)


def pings(path: str) -> float:
    """qs_pings_sent_total{path=PATH} of this process."""
    return REGISTRY.get_sample_value("qs_pings_sent_total", {"path": path}) or 0.0


def answer_pings(ws, seconds: float) -> list[float]:
    """Read RAW websocket WS for SECONDS, answering each PING with a PONG; the times the PINGs came."""
    came, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            message = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        if message == "2":
            came.append(time.monotonic())
            ws.send("3")
    return came


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "queued"])
def test_a_websocket_client_that_answers_is_pinged_at_the_interval_and_stays(ping_app, live_server, fast):
    server = live_server(ping_app(fast))
    before = {path: pings(path) for path in ("sent", "queue")}
    ws = raw_socketio(server.url, timeout=10)

    window = 2.5 * (INTERVAL_S + TIMEOUT_S)  # past engine.io's writer deadline (interval + timeout) more than twice
    came = answer_pings(ws, window)

    gaps = [b - a for a, b in zip(came, came[1:])]
    assert len(came) >= 4, f"{len(came)} pings in {window} s at a {INTERVAL_S} s interval"
    assert min(gaps) >= INTERVAL_S - 0.1, gaps  # a batch sends up to 50 ms early, never a cycle early
    assert sorted(gaps)[len(gaps) // 2] < INTERVAL_S * 1.5, gaps
    assert answer_pings(ws, INTERVAL_S * 2.5), "no more pings"  # still connected, still pinged
    ws.close()
    sent, queued = pings("sent") - before["sent"], pings("queue") - before["queue"]
    if fast == "1":
        assert sent >= len(came) - 1, (sent, queued)  # idle between pings: written straight to the websocket
    else:
        assert sent == 0 and queued >= len(came), (sent, queued)


def test_a_client_that_stops_answering_is_closed_after_ping_timeout(ping_app, live_server):
    app = ping_app()
    server = live_server(app)
    ws = raw_socketio(server.url, timeout=10)
    wait_until(lambda: app.state.sio.eio.sockets, message="the session")
    (session,) = app.state.sio.eio.sockets.values()

    while ws.recv() != "2":  # the connect ack and the welcome come first
        pass
    pinged = time.monotonic()
    wait_until(lambda: session.closed, INTERVAL_S + TIMEOUT_S + 5, 0.01, message="the silent session closed")
    closed_after = time.monotonic() - pinged
    assert TIMEOUT_S - 0.1 <= closed_after <= TIMEOUT_S + 2, closed_after

    def websocket_ended() -> bool:
        try:
            ws.settimeout(0.2)
            return ws.recv() in ("", None) or not ws.connected
        except websocket.WebSocketTimeoutException:
            return False
        except Exception:  # noqa: BLE001 - closed or reset: ended either way
            return True

    wait_until(websocket_ended, INTERVAL_S + TIMEOUT_S + 5, message="the websocket closed")


def test_a_polling_client_gets_its_pings_and_stays(ping_app, live_server):
    app = ping_app()
    server = live_server(app)
    http = requests.Session()
    base = server.url + "/socket.io/?EIO=4&transport=polling"
    opened = http.get(base, timeout=5).text
    sid = opened[opened.index('"sid":"') + 7 :].split('"', 1)[0]
    assert http.post(f"{base}&sid={sid}", data="40", timeout=5).text == "OK"

    came, deadline = [], time.monotonic() + 5 * INTERVAL_S
    while time.monotonic() < deadline:
        packets = http.get(f"{base}&sid={sid}", timeout=10).text.split("\x1e")  # a long poll
        if "2" in packets:
            came.append(time.monotonic())
            assert http.post(f"{base}&sid={sid}", data="3", timeout=5).text == "OK"
    http.close()

    assert len(came) >= 3, came
    session = app.state.sio.eio.sockets[sid]
    assert not session.closed and not session.upgraded


def test_the_wheel_is_one_task_for_all_clients_and_no_client_has_a_ping_task(app, live_server):
    server = live_server(app)
    clients = [raw_socketio(server.url, timeout=10) for _ in range(20)]
    for ws in clients:
        assert ws.recv().startswith("40")
    wheel = app.state.ping_wheel

    def tasks() -> list[str]:
        return [f"{task.get_name()} {task.get_coro().__qualname__}" for task in asyncio.all_tasks()]

    running = on_loop(server, tasks)
    waiting = on_loop(server, lambda: [session.sid for _due, session in wheel.due])
    sessions = on_loop(server, lambda: list(app.state.sio.eio.sockets))
    for ws in clients:
        ws.close()

    assert [t for t in running if t.startswith("qs-ping-wheel ")] == ["qs-ping-wheel supervise"], running
    assert not [t for t in running if "_send_ping" in t], running
    assert sorted(waiting) == sorted(sessions), "every session waits on the wheel"


def test_a_failing_wheel_is_restarted_and_a_stalled_one_makes_readyz_fail(app, live_server, caplog):
    server = live_server(app)
    wheel = app.state.ping_wheel
    ws = raw_socketio(server.url, timeout=10)
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 200

    with caplog.at_level(logging.ERROR, logger="backend.web"):
        on_loop(server, lambda: wheel.due.appendleft((0.0, object())))  # no Engine.IO session: the loop raises
        wait_until(lambda: "ping wheel task failed; restarting it" in caplog.text, message="the failure logged")
    failed = time.monotonic()
    wait_until(lambda: wheel.heartbeat > failed + 0.5, message="the wheel running again")
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 200

    def stop_the_wheel():
        (task,) = [task for task in asyncio.all_tasks() if task.get_name() == "qs-ping-wheel"]
        task.cancel()
        wheel.heartbeat -= 60  # as if it had not beaten for a minute

    on_loop(server, stop_the_wheel)
    answer = requests.get(server.url + "/readyz", timeout=5)
    ws.close()

    assert answer.status_code == 503
    assert "ping wheel stalled" in answer.json()["reason"]
