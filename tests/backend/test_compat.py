"""backend/compat.py against the pinned libraries: each test names its hook when the library changed under it.

Engine.IO and Socket.IO hooks run on a real in-process python-socketio Server (threading mode) driven through its
WSGI entry point; the eventlet hooks on a real eventlet WSGI server in a child process.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest
import socketio

from backend import compat
from tests.harness.polling import wait_until
from tests.harness.processes import ROOT


def eventlet_module(name: str):
    """eventlet.NAME, imported without its deprecation banner (the web process silences it the same way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(f"eventlet.{name}")


def require(condition, hook: str, what: str) -> None:
    """Fail naming the compat HOOK and WHAT is wrong unless CONDITION."""
    assert condition, f"compat hook {hook}: {what}"


def call(hook: str, function, *args):
    """Run FUNCTION(*ARGS); any error fails naming the compat HOOK."""
    try:
        return function(*args)
    except Exception as exc:
        raise AssertionError(f"compat hook {hook}: {type(exc).__name__}: {exc}") from exc


def wsgi(server: socketio.Server, method: str, query: str, body: bytes = b"") -> tuple[str, bytes]:
    """One request to SERVER's WSGI entry point; (status, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/plain",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
    }
    answer: list[str] = []
    chunks = server.handle_request(environ, lambda status, headers, exc_info=None: answer.append(status))
    return answer[0], b"".join(chunks)


@pytest.fixture
def sio():
    """A real python-socketio Server (threading mode) with a connect and a disconnect handler."""
    server = socketio.Server(async_mode="threading")
    server.disconnects = []
    server.on("connect", lambda sid, environ, auth=None: True)
    server.on("disconnect", lambda sid, reason=None: server.disconnects.append(sid))
    yield server
    server.eio.shutdown()


def polling_session(server: socketio.Server, connect: bool = True) -> tuple[str, str | None]:
    """Open an Engine.IO polling session (and connect `/` when CONNECT); (eio_sid, Socket.IO sid or None)."""
    status, body = wsgi(server, "GET", "EIO=4&transport=polling")
    assert status.startswith("200"), (status, body)
    eio_sid = json.loads(body[1:])["sid"]
    if not connect:
        return eio_sid, None
    status, body = wsgi(server, "POST", f"EIO=4&transport=polling&sid={eio_sid}", b"40")
    assert status.startswith("200"), (status, body)
    sid = wait_until(lambda: server.manager.sid_from_eio_sid(eio_sid, "/"), 5, message="namespace connected")
    return eio_sid, sid


def in_thread(function, *args) -> threading.Thread:
    """Run FUNCTION(*ARGS) in a daemon thread; the thread."""
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def test_engineio_socket(sio):
    hook = "engineio_socket"
    eio_sid, sid = polling_session(sio)
    require(isinstance(getattr(sio.eio, "sockets", None), dict), hook, "python-engineio Server.sockets is gone")
    found = call(hook, compat.engineio_socket, sio, sid)
    require(found is not None and found.sid == eio_sid, hook, f"did not find the client's Socket: {found!r}")
    require(call(hook, compat.engineio_socket, sio, "no-such-sid") is None, hook, "an unknown sid gave a Socket")


def test_engineio_queue_size(sio):
    hook = "engineio_queue_size"
    eio_sid, sid = polling_session(sio)
    require(hasattr(sio.eio.sockets[eio_sid], "queue"), hook, "python-engineio Socket.queue is gone")
    before = call(hook, compat.engineio_queue_size, sio, sid)
    sio.emit("tick", {"n": 1}, to=sid)  # nobody polls: the packet waits in the queue
    require(
        call(hook, compat.engineio_queue_size, sio, sid) == before + 1,
        hook,
        "python-engineio Socket.queue no longer holds the packets waiting for the client",
    )
    require(call(hook, compat.engineio_queue_size, sio, "no-such-sid") == 0, hook, "an unknown sid has a queue")


def test_engineio_sessions(sio):
    hook = "engineio_sessions"
    eio_sid, _ = polling_session(sio, connect=False)
    sessions = call(hook, compat.engineio_sessions, sio)
    require(
        eio_sid in sessions and sessions[eio_sid].sid == eio_sid,
        hook,
        "python-engineio Server.sockets no longer maps eio_sid to Socket",
    )
    sessions.clear()
    require(eio_sid in sio.eio.sockets, hook, "returned python-engineio's own dict, not a snapshot")


def test_engineio_close_nowait(sio):
    hook = "engineio_close_nowait"
    eio_sid, sid = polling_session(sio)
    session = sio.eio.sockets[eio_sid]
    results = []
    thread = in_thread(lambda: results.append(call(hook, compat.engineio_close_nowait, sio, eio_sid)))
    thread.join(3)
    require(not thread.is_alive(), hook, "python-engineio Socket.close(wait=False) waited for a poll that never came")
    require(results == [True], hook, f"returned {results}")
    require(session.closed and eio_sid not in sio.eio.sockets, hook, "the session is still open or listed")
    require(sio.disconnects == [sid], hook, f"Socket.IO's disconnect handler saw {sio.disconnects}, not [{sid!r}]")
    require(call(hook, compat.engineio_close_nowait, sio, eio_sid) is False, hook, "a closed session closed again")


def test_engineio_polling_close_never_waits(sio):
    hook = "engineio_polling_close_never_waits"
    from engineio import socket as engineio_socket_module

    original = engineio_socket_module.Socket.close
    parameters = list(inspect.signature(getattr(original, "qs_original", original)).parameters)
    require(
        parameters[:4] == ["self", "wait", "abort", "reason"],
        hook,
        f"python-engineio Socket.close takes {parameters}, not (self, wait, abort, reason)",
    )
    call(hook, compat.engineio_polling_close_never_waits)
    try:
        polling_eio_sid, _ = polling_session(sio)
        thread = in_thread(sio.eio.disconnect, polling_eio_sid)  # public API, wait=True inside
        thread.join(3)
        require(not thread.is_alive(), hook, "Server.disconnect of a polling session still waits for a GET")

        upgraded_eio_sid, _ = polling_session(sio)
        upgraded = sio.eio.sockets[upgraded_eio_sid]
        require(hasattr(upgraded, "upgraded"), hook, "python-engineio Socket.upgraded is gone")
        upgraded.upgraded = True  # what the websocket handler sets; its writer task is played below
        thread = in_thread(sio.eio.disconnect, upgraded_eio_sid)
        thread.join(0.3)  # nobody took the CLOSE packet yet: the close must still wait, by design
        require(thread.is_alive(), hook, "a websocket session's close no longer waits for its writer")
        while thread.is_alive() and upgraded.poll():  # the writer's part: take the CLOSE packet, then the end
            pass
        thread.join(3)
        require(not thread.is_alive(), hook, "a websocket session's close did not end once its queue was taken")
    finally:
        engineio_socket_module.Socket.close = original


def test_engineio_bad_frame_ends_session():
    hook = "engineio_bad_frame_ends_session"
    from engineio import socket as engineio_socket_module

    handler = getattr(engineio_socket_module.Socket, "_websocket_handler", None)
    require(handler is not None, hook, "python-engineio Socket._websocket_handler is gone")
    parameters = list(inspect.signature(handler).parameters)
    require(parameters[:2] == ["self", "ws"], hook, f"Socket._websocket_handler takes {parameters}, not (self, ws)")
    require(hasattr(engineio_socket_module.Socket, "close"), hook, "python-engineio Socket.close is gone")
    call(hook, compat.engineio_bad_frame_ends_session)
    require(
        getattr(engineio_socket_module.Socket._websocket_handler, "qs_wrapped", False),
        hook,
        "the handler was not wrapped",
    )


def test_socketio_event_errors_logged(sio):
    hook = "socketio_event_errors_logged"
    handler = getattr(socketio.Server, "_handle_event_internal", None)
    require(handler is not None, hook, "python-socketio Server._handle_event_internal is gone")
    parameters = list(inspect.signature(handler).parameters)
    require(
        parameters[:3] == ["self", "server", "sid"],
        hook,
        f"Server._handle_event_internal takes {parameters}, not (self, server, sid, …)",
    )
    call(hook, compat.socketio_event_errors_logged)
    # A list as event name raises inside the library's dispatch; wrapped, it is a dropped event.
    result = call(hook, sio._handle_event_internal, sio, "sid", "eio_sid", [["subscribe"], {}], "/", None)
    require(result is None, hook, f"a bad event name gave {result!r}, not a dropped event")


EVENTLET_SERVER = """
import sys, eventlet, eventlet.wsgi, eventlet.websocket
from backend import compat
if sys.argv[1] == "patched":
    compat.disable_permessage_deflate()
echo = eventlet.websocket.WebSocketWSGI(lambda ws: ws.send(ws.wait() or ""))
def app(environ, start_response):
    if environ["PATH_INFO"] == "/ws":
        return echo(environ, start_response)
    return compat.eventlet_respond_and_close(environ, "413 Content Too Large", [("Content-Type", "text/plain")],
                                             b"too big")
sock = eventlet.listen(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
eventlet.wsgi.server(sock, app, log_output=False)
"""


@pytest.fixture
def eventlet_server():
    """Factory: the real eventlet WSGI server above in a child process ('patched' or 'plain'); its port."""
    children: list[subprocess.Popen] = []

    def start(mode: str) -> int:
        """Start one server; its port."""
        child = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", EVENTLET_SERVER, mode],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        line = child.stdout.readline()
        assert line.strip().isdigit(), f"eventlet server did not start: {line!r} {child.stderr.read()[-2000:]}"
        return int(line)

    yield start
    for child in children:
        child.kill()
        child.wait()


def exchange(port: int, request: bytes, timeout: float = 3.0) -> bytes:
    """Send REQUEST and read until the server closes or TIMEOUT passes; what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return data
            data += chunk
            if b"\r\n\r\n" in data and b" 101 " in data.split(b"\r\n", 1)[0]:
                return data  # a websocket stays open: its head is all there is to read
    return data + b"<still open>"


def test_eventlet_respond_and_close(eventlet_server):
    hook = "eventlet_respond_and_close"
    wsgi = eventlet_module("wsgi")
    require(hasattr(wsgi, "WSGI_LOCAL"), hook, "eventlet.wsgi.WSGI_LOCAL is gone")
    require(callable(getattr(wsgi.Input, "get_socket", None)), hook, "eventlet.wsgi.Input.get_socket is gone")
    port = eventlet_server("plain")
    answer = exchange(port, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    require(
        answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"\r\n\r\ntoo big"),
        hook,
        f"eventlet did not send the response alone and close the connection: {answer[-300:]!r}",
    )
    require(b"\r\nConnection: close\r\n" in answer, hook, f"no Connection: close in {answer!r}")


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
)


def test_disable_permessage_deflate(eventlet_server):
    hook = "disable_permessage_deflate"
    websocket = eventlet_module("websocket")
    method = getattr(websocket.WebSocketWSGI, "_negotiate_permessage_deflate", None)
    require(method is not None, hook, "eventlet WebSocketWSGI._negotiate_permessage_deflate is gone")
    require(
        "extensions" in inspect.signature(method).parameters,
        hook,
        "eventlet WebSocketWSGI._negotiate_permessage_deflate no longer takes `extensions`",
    )
    plain = exchange(eventlet_server("plain"), UPGRADE)
    require(
        b" 101 " in plain and b"permessage-deflate" in plain.lower(),
        hook,
        f"unpatched eventlet did not negotiate deflate, so the test proves nothing: {plain!r}",
    )
    patched = exchange(eventlet_server("patched"), UPGRADE)
    require(
        b" 101 " in patched and b"permessage-deflate" not in patched.lower(),
        hook,
        f"eventlet negotiated permessage-deflate despite the hook: {patched!r}",
    )


def test_restart_safe_redbeat_scheduler():
    hook = "restart_safe_redbeat_scheduler"
    from celery import Celery
    from redbeat import RedBeatScheduler

    cls = call(hook, compat.restart_safe_redbeat_scheduler)
    require(issubclass(cls, RedBeatScheduler) and cls.tick is not RedBeatScheduler.tick, hook, "no tick of ours")
    source = inspect.getsource(RedBeatScheduler.tick)
    for name in ("self._maybe_due_kwargs", "self.lock"):
        require(name in source, hook, f"RedBeat's own tick no longer uses {name}: compare our copy of it")
    app = Celery("compat-test", broker="memory://", set_as_current=False)
    app.conf.redbeat_redis_url = "redis://127.0.0.1:1/0"  # never reached: the scheduler is lazy
    try:
        scheduler = cls(app, lazy=True)
        for name in ("lock", "lock_key", "lock_timeout", "_maybe_due_kwargs"):
            require(hasattr(scheduler, name), hook, f"RedBeatScheduler.{name} is gone")
        require(isinstance(app.redbeat_conf.schedule_key, str), hook, "RedBeat's app.redbeat_conf.schedule_key is gone")
        kwargs = scheduler._maybe_due_kwargs
        require(
            isinstance(kwargs, dict) and kwargs.get("producer") is scheduler.producer,
            hook,
            f"RedBeat's _maybe_due_kwargs no longer hands over the scheduler's producer: {kwargs!r}",
        )
        try:
            inspect.signature(scheduler.apply_async).bind(object(), **kwargs)
        except TypeError as exc:
            raise AssertionError(f"compat hook {hook}: Scheduler.apply_async refuses {sorted(kwargs)}: {exc}") from exc
    finally:
        app.close()


FAST_PATH_SERVER = """
import eventlet
eventlet.monkey_patch()
import json, sys, time
import eventlet.wsgi, socketio
from engineio import packet as ep
from backend import compat
from backend.web.broadcast import text_frame

compat.engineio_websocket_lanes()
sio = socketio.Server(async_mode="eventlet")


def message(n, pad=0):
    return '2' + json.dumps(["x", {"n": n, "pad": "p" * pad}])


def frame(n, pad=0):
    return text_frame(("4" + message(n, pad)).encode())


def idle(s):
    return not s.queue.qsize() and s.queue.getting() and not s.qs_lane.busy and s.qs_lane.pending is None


# Yield to the other green threads until CONDITION holds; False (noted in OUT) after TIMEOUT s.
def poll(condition, what, out, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            out["timed_out"] = what
            return False
        eventlet.sleep(0.005)
    return True


@sio.on("go")
def go(sid):
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    s = sio.eio.sockets[eio_sid]
    out = {"lane": getattr(s, "qs_lane", None) is not None}
    if not poll(lambda: idle(s), "the connect ack to go out", out):
        return print(json.dumps(out), flush=True)
    out["idle"] = compat.websocket_fast_send(sio, eio_sid, frame(1))
    sio.eio.send_packet(eio_sid, ep.Packet(ep.MESSAGE, message(2)))
    out["after_queue"] = compat.websocket_fast_send(sio, eio_sid, frame(99))  # 2 is queued: refused
    if not poll(lambda: idle(s), "packet 2 to go out", out):
        return print(json.dumps(out), flush=True)
    # The client reads nothing now: write 64 KB frames until one does not fit whole.
    out["fill"], n = [], 100
    while not out["fill"] or out["fill"][-1] == "sent":
        out["fill"].append(compat.websocket_fast_send(sio, eio_sid, frame(n, 65536)))
        if out["fill"][-1] == "blocked":
            sio.eio.send_packet(eio_sid, ep.Packet(ep.MESSAGE, message(n, 65536)))  # what the broadcaster does
        n += 1
    out["last"] = n - 1
    out["after_partial"] = compat.websocket_fast_send(sio, eio_sid, frame(999))  # the flush marker is queued
    # The writer takes the marker off the queue and blocks inside ws.send writing the tail.
    if not poll(lambda: not s.queue.qsize() and s.qs_lane.busy, "the writer to take the flush marker", out):
        return print(json.dumps(out), flush=True)
    out["writer_mid_frame"] = compat.websocket_fast_send(sio, eio_sid, frame(998))
    sio.eio.send_packet(eio_sid, ep.Packet(ep.MESSAGE, message(3)))
    print(json.dumps(out), flush=True)


sock = eventlet.listen(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
eventlet.wsgi.server(sock, socketio.WSGIApp(sio), log_output=False)
"""


def test_engineio_websocket_lanes_and_websocket_fast_send():
    hooks = "engineio_websocket_lanes / websocket_fast_send"
    from engineio import socket as engineio_socket_module

    handler = getattr(engineio_socket_module.Socket, "_websocket_handler", None)
    require(handler is not None, hooks, "python-engineio Socket._websocket_handler is gone")
    parameters = list(inspect.signature(getattr(handler, "qs_original", handler)).parameters)
    require(parameters[:2] == ["self", "ws"], hooks, f"Socket._websocket_handler takes {parameters}, not (self, ws)")
    websocket_module = eventlet_module("websocket")
    require(callable(getattr(websocket_module.RFC6455WebSocket, "_send", None)), hooks, "eventlet ws._send is gone")
    require(hasattr(eventlet_module("queue").Queue, "getting"), hooks, "eventlet Queue.getting is gone")

    from tests.chaos.hostile import raw_socketio

    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", FAST_PATH_SERVER],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        if not line.strip().isdigit():
            child.kill()
            require(False, hooks, f"server did not start: {line!r} {child.stderr.read()[-2000:]}")
        ws = raw_socketio(f"http://127.0.0.1:{int(line)}", rcvbuf=4096, timeout=20)
        require(ws.recv().startswith("40"), hooks, "no connect ack")
        ws.send('42["go"]')
        out = json.loads(child.stdout.readline())  # the client reads nothing until the server is done
        require("timed_out" not in out, hooks, f"the server timed out waiting for {out.get('timed_out')}: {out}")
        require(out["lane"], hooks, "no lane on a websocket session")
        require(out["idle"] == "sent", hooks, f"an idle websocket was not written: {out['idle']}")
        require(out["after_queue"] == "queued", hooks, f"written past a queued packet: {out['after_queue']}")
        require(out["fill"][-1] in ("partial", "blocked"), hooks, f"a full socket: {out['fill']}")
        if out["fill"][-1] == "partial":
            require(out["after_partial"] == "queued", hooks, f"written past a tail: {out['after_partial']}")
        require(out["writer_mid_frame"] == "busy", hooks, f"written while the writer was mid-frame: {out}")

        numbers = []
        while len(numbers) < out["last"] - 100 + 4:
            text = ws.recv()  # websocket-client checks each frame; two frames mixed would not decode
            if text == "2":
                continue
            event, data = json.loads(text[2:])
            numbers.append(data["n"])
        ws.close()
        expected = [1, 2, *range(100, out["last"] + 1), 3]
        require(numbers == expected, hooks, f"frames out of order: {numbers[:8]}… not {expected[:8]}…")
    finally:
        child.kill()
        child.wait()


EVENTS_SERVER = """
import eventlet
eventlet.monkey_patch()
import eventlet.wsgi, socketio

sio = socketio.Server(async_mode="eventlet")


@sio.on("go")
def go(sid, count):
    for n in range(count):
        sio.emit("n", n, to=sid)


sock = eventlet.listen(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
eventlet.wsgi.server(sock, socketio.WSGIApp(sio), log_output=False)
"""


def test_socketio_client_events_in_order():
    hook = "socketio_client_events_in_order"
    from engineio import client as engineio_client

    require(callable(getattr(engineio_client.Client, "_trigger_event", None)), hook, "Client._trigger_event is gone")
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", EVENTS_SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    client = socketio.Client(reconnection=False)
    try:
        port = int(child.stdout.readline())
        call(hook, compat.socketio_client_events_in_order, client)
        compat.socketio_client_events_in_order(client)  # a second call changes nothing
        seen: list[tuple[int, threading.Thread]] = []  # the Thread objects themselves: idents are reused
        client.on("n", lambda n: seen.append((n, threading.current_thread())))
        client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=10)
        client.emit("go", 300)
        wait_until(lambda: len(seen) >= 300, 20, message="300 events")
        # Without the hook python-engineio starts a thread per packet: 300 threads, and under load another order.
        threads = {thread for _n, thread in seen}
        require(len(threads) == 1, hook, f"the handlers ran in {len(threads)} threads, not the reader's alone")
        require([n for n, _thread in seen] == list(range(300)), hook, "events handled out of arrival order")
    finally:
        client.disconnect()
        child.kill()
        child.wait()


def test_requests_bodies_capped():
    hook = "requests_bodies_capped"
    import requests

    from tasks.attempt_deadline import attempt_deadline, current_answer_bytes  # the hook's one user
    from tests.harness.hostile_receiver import HostileReceiver, wait_closed

    call(hook, compat.requests_bodies_capped, current_answer_bytes)
    call(hook, compat.requests_bodies_capped, current_answer_bytes)  # a second install changes nothing
    require(getattr(requests.Session.send, "qs_capped", False), hook, "requests.Session.send is not wrapped")
    with HostileReceiver() as server:
        with attempt_deadline(10, answer_bytes=4096):
            answer = requests.post(server.url("/huge"), data=b"{}", timeout=10)
        [exchange] = server.received("/huge")
        wait_closed(exchange, 10)
        require(answer.status_code == 200 and answer.content == b"\0" * 4096, hook, f"not capped: {answer!r}")
        require(exchange.sent < 32 * 1024 * 1024, hook, f"read {exchange.sent:,} bytes of a 300 MB answer")
        plain = requests.post(server.url("/ok"), data=b"{}", timeout=10)  # no cap: requests as ever
        require(plain.status_code == 200 and plain.content == b"", hook, f"an uncapped call changed: {plain!r}")
