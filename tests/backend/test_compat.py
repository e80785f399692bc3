"""backend/compat.py against the pinned libraries: each test names its hook when the library changed under it.

Engine.IO and Socket.IO hooks run on a real in-process python-socketio AsyncServer driven through its ASGI app (httpx's
ASGITransport), or behind a real uvicorn in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
import time

import pytest
import socketio

from backend import compat
from harness import loops
from harness.loops import run as run_loop
from harness.polling import wait_until


def require(condition, hook: str, what: str) -> None:
    """Fail naming the compat HOOK and WHAT is wrong unless CONDITION."""
    assert condition, f"compat hook {hook}: {what}"


def call(hook: str, function, *args):
    """Run FUNCTION(*ARGS); any error fails naming the compat HOOK."""
    try:
        return function(*args)
    except Exception as exc:
        raise AssertionError(f"compat hook {hook}: {type(exc).__name__}: {exc}") from exc


def in_thread(function, *args) -> threading.Thread:
    """Run FUNCTION(*ARGS) in a daemon thread; the thread."""
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def asgi_polling_session(server: socketio.AsyncServer, connect: bool = True) -> tuple[str, str | None]:
    """Open an Engine.IO polling session on the AsyncServer SERVER through its ASGI app; (eio_sid, sid or None)."""
    import httpx

    async def open_session():
        transport = httpx.ASGITransport(app=socketio.ASGIApp(server))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            opened = await client.get("/socket.io/?EIO=4&transport=polling")
            assert opened.status_code == 200, opened.text
            eio_sid = json.loads(opened.text[1:])["sid"]
            if not connect:
                return eio_sid, None
            posted = await client.post(f"/socket.io/?EIO=4&transport=polling&sid={eio_sid}", content=b"40")
            assert posted.status_code == 200, posted.text
            return eio_sid, server.manager.sid_from_eio_sid(eio_sid, "/")

    return open_session()


def async_server() -> socketio.AsyncServer:
    """A real python-socketio AsyncServer (ASGI) recording disconnects."""
    server = socketio.AsyncServer(async_mode="asgi")
    server.disconnects = []

    async def on_disconnect(sid, reason=None):
        server.disconnects.append(sid)

    server.on("connect", lambda sid, environ, auth=None: True)
    server.on("disconnect", on_disconnect)
    return server


def test_engineio_backlog_counts_the_packets_waiting_for_a_client():
    hook = "engineio_backlog"

    async def scenario():
        server = async_server()
        eio_sid, sid = await asgi_polling_session(server)
        require(isinstance(getattr(server.eio, "sockets", None), dict), hook, "AsyncServer.sockets is gone")
        require(hasattr(server.eio.sockets[eio_sid], "queue"), hook, "python-engineio AsyncSocket.queue is gone")
        before, _ = call(hook, compat.engineio_backlog, server.eio, eio_sid)
        await server.emit("tick", {"n": 1}, to=sid)  # nobody polls: the packet waits in the queue
        require(
            call(hook, compat.engineio_backlog, server.eio, eio_sid)[0] == before + 1,
            hook,
            "python-engineio AsyncSocket.queue no longer holds the packets waiting for the client",
        )
        require(call(hook, compat.engineio_backlog, server.eio, "no-such-sid") == (0, 0), hook, "a gone one has some")

    run_loop(scenario())


def test_engineio_sessions():
    hook = "engineio_sessions"

    async def scenario():
        server = async_server()
        eio_sid, _ = await asgi_polling_session(server, connect=False)
        sessions = call(hook, compat.engineio_sessions, server)
        require(
            eio_sid in sessions and sessions[eio_sid].sid == eio_sid,
            hook,
            "python-engineio AsyncServer.sockets no longer maps eio_sid to AsyncSocket",
        )
        sessions.clear()
        require(eio_sid in server.eio.sockets, hook, "returned python-engineio's own dict, not a snapshot")

    loops.run(scenario())


def test_engineio_close_nowait():
    hook = "engineio_close_nowait"
    from engineio import packet as engineio_packet

    async def scenario():
        server = async_server()
        eio_sid, sid = await asgi_polling_session(server)
        require(sid is not None, hook, "the polling session did not connect the namespace")
        session = server.eio.sockets[eio_sid]
        try:
            # Nobody polls: a close that waited for the client to take the CLOSE packet would never return.
            closed = await asyncio.wait_for(compat.engineio_close_nowait(server, eio_sid), 3)
        except TimeoutError:
            raise AssertionError(f"compat hook {hook}: AsyncSocket.close(wait=False) waited for a poll") from None
        except Exception as exc:
            raise AssertionError(f"compat hook {hook}: {type(exc).__name__}: {exc}") from exc
        require(closed is True, hook, f"returned {closed}")
        require(session.closed and eio_sid not in server.eio.sockets, hook, "the session is still open or listed")
        require(server.disconnects == [sid], hook, f"the disconnect handler saw {server.disconnects}, not [{sid!r}]")
        queued = []
        while not session.queue.empty():
            item = session.queue.get_nowait()
            queued.append(item if item is None else item.packet_type)
        # The CLOSE packet, then the None that ends a websocket's writer task (which then closes the websocket).
        require(queued[-2:] == [engineio_packet.CLOSE, None], hook, f"the session's queue ends {queued[-2:]}")
        again = await compat.engineio_close_nowait(server, eio_sid)
        require(again is False, hook, "a closed session closed again")

    loops.run(scenario())


def test_engineio_polling_close_never_waits():
    hook = "engineio_polling_close_never_waits"
    from engineio import async_socket

    original = async_socket.AsyncSocket.close
    parameters = list(inspect.signature(getattr(original, "qs_original", original)).parameters)
    require(
        parameters[:4] == ["self", "wait", "abort", "reason"],
        hook,
        f"python-engineio AsyncSocket.close takes {parameters}, not (self, wait, abort, reason)",
    )

    async def scenario():
        server = async_server()
        polling_eio_sid, _ = await asgi_polling_session(server)
        try:  # the public API, wait=True inside: nobody polls, so a close that waited would never return
            await asyncio.wait_for(server.eio.disconnect(polling_eio_sid), 3)
        except TimeoutError:
            raise AssertionError(f"compat hook {hook}: disconnecting a polling session still waits") from None

        upgraded_eio_sid, _ = await asgi_polling_session(server)
        upgraded = server.eio.sockets[upgraded_eio_sid]
        require(hasattr(upgraded, "upgraded"), hook, "python-engineio AsyncSocket.upgraded is gone")
        upgraded.upgraded = True  # what the websocket handler sets; its writer task is played below
        closing = asyncio.create_task(server.eio.disconnect(upgraded_eio_sid))
        done, _ = await asyncio.wait({closing}, timeout=0.3)  # nobody took the CLOSE packet: it must still wait
        require(not done, hook, "a websocket session's close no longer waits for its writer")
        await upgraded.poll()  # the writer's part: take what is queued, the CLOSE packet included
        try:
            await asyncio.wait_for(closing, 3)
        except TimeoutError:
            raise AssertionError(f"compat hook {hook}: a websocket's close did not end once its queue went") from None

    call(hook, compat.engineio_polling_close_never_waits)
    try:
        run_loop(scenario())
    finally:
        async_socket.AsyncSocket.close = original


def test_engineio_bad_frame_ends_session():
    hook = "engineio_bad_frame_ends_session"
    from engineio import async_socket

    handler = getattr(async_socket.AsyncSocket, "_websocket_handler", None)
    require(handler is not None, hook, "python-engineio AsyncSocket._websocket_handler is gone")
    require(inspect.iscoroutinefunction(handler), hook, "AsyncSocket._websocket_handler is no longer a coroutine")
    parameters = list(inspect.signature(handler).parameters)
    require(parameters[:2] == ["self", "ws"], hook, f"_websocket_handler takes {parameters}, not (self, ws)")
    close = list(inspect.signature(async_socket.AsyncSocket.close).parameters)
    require({"wait", "abort", "reason"} <= set(close), hook, f"AsyncSocket.close takes {close}")
    call(hook, compat.engineio_bad_frame_ends_session)
    require(
        getattr(async_socket.AsyncSocket._websocket_handler, "qs_wrapped", False), hook, "the handler was not wrapped"
    )
    # What it does on a real server: tests/backend/web/test_relay_hardening.py (junk frames, a few log lines).


def test_socketio_event_errors_logged():
    hook = "socketio_event_errors_logged"
    handler = getattr(socketio.AsyncServer, "_handle_event_internal", None)
    require(handler is not None, hook, "python-socketio AsyncServer._handle_event_internal is gone")
    parameters = list(inspect.signature(handler).parameters)
    require(
        parameters[:3] == ["self", "server", "sid"],
        hook,
        f"AsyncServer._handle_event_internal takes {parameters}, not (self, server, sid, …)",
    )
    call(hook, compat.socketio_event_errors_logged)
    server = async_server()
    # A list as event name raises inside the library's dispatch; wrapped, it is a dropped event.
    result = run_loop(server._handle_event_internal(server, "sid", "eio_sid", [["subscribe"], {}], "/", None))
    require(result is None, hook, f"a bad event name gave {result!r}, not a dropped event")


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


def test_socketio_client_events_in_order():
    hook = "socketio_client_events_in_order"
    from engineio import client as engineio_client

    require(callable(getattr(engineio_client.Client, "_trigger_event", None)), hook, "Client._trigger_event is gone")
    import uvicorn

    from harness.ports import free_port

    server = async_server()

    @server.on("go")
    async def go(sid, count):
        for n in range(count):
            await server.emit("n", n, to=sid)

    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(socketio.ASGIApp(server), port=port, log_config=None))
    serving = in_thread(uvicorn_server.run)
    client = socketio.Client(reconnection=False)
    try:
        wait_until(lambda: uvicorn_server.started, 10, message="uvicorn started")
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
        uvicorn_server.should_exit = True
        serving.join(10)


# --- the request-head deadline (backend/web/server.py's protocol) -----------------------------------------------


async def slow_app(scope, receive, send):
    """An ASGI app answering /slow after 1.5 s and anything else at once."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.5)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_header_deadline_protocol():
    hook = "header_deadline_protocol"
    import uvicorn

    from harness.ports import free_port, is_closed

    protocol = call(hook, compat.header_deadline_protocol, 1.0)
    port = free_port()
    config = uvicorn.Config(slow_app, host="127.0.0.1", port=port, http=protocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = in_thread(server.run)
    try:
        wait_until(lambda: server.started, 10, message="uvicorn started")
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        half.sendall(b"GET /fast HT")
        started = time.monotonic()
        # A request answered after the deadline is not cut, and its connection takes a next request.
        kept = socket.create_connection(("127.0.0.1", port), timeout=5)
        kept.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        require(kept.recv(1024).endswith(b"ok"), hook, "a request answered after the deadline was cut")
        kept.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        require(kept.recv(1024).endswith(b"ok"), hook, "the kept-alive connection took no next request")
        answered = time.monotonic()
        closed = f"compat hook {hook}: the half and silent request heads were not closed"
        wait_until(lambda: is_closed(half) and is_closed(silent), 5, 0.05, closed)
        waited = time.monotonic() - started
        require(0.8 < waited < 3, hook, f"the half request was closed after {waited:.1f} s, not about 1 s")
        # uvicorn's own keep-alive timeout is 5 s: closing sooner is the deadline on the next head.
        wait_until(lambda: is_closed(kept), 5, 0.05, f"compat hook {hook}: the idle connection was not closed")
        require(time.monotonic() - answered < 2.5, hook, "the idle connection outlived the head deadline")
        long_target = b"GET /fast?" + b"a" * compat.MAX_REQUEST_TARGET_BYTES + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        many_fields = b"GET /fast HTTP/1.1\r\n" + (b"X: " + b"y" * 1000 + b"\r\n") * 70 + b"\r\n"
        for head, status in ((long_target, b"414"), (many_fields, b"431")):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            require(answer.startswith(b"HTTP/1.1 " + status), hook, f"a head over a limit got {answer[:60]!r}")
            require(b"connection: close" in answer, hook, "the refusal did not close the connection")
        fine = b"GET /fast?" + b"a" * 4000 + b" HTTP/1.1\r\n" + b"X: y\r\n" * 1000 + b"Connection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(fine)
            require(sock.recv(1024).startswith(b"HTTP/1.1 200"), hook, "a head within the limits was refused")
        for sock in (half, silent, kept):
            sock.close()
    finally:
        server.should_exit = True
        thread.join(10)


# --- the broadcast fast path on asyncio: a real uvicorn (the hooks' protocol class) in a thread ------------------


class FastPathServer:
    """python-socketio's AsyncServer on uvicorn with compat.websocket_protocol_class, in a thread of this process."""

    def __init__(self):
        """Serve on a free loopback port; start() returns once it accepts connections."""
        import uvicorn

        from harness.ports import free_port

        compat.engineio_websocket_protocols()
        self.sio = socketio.AsyncServer(async_mode="asgi")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            socketio.ASGIApp(self.sio),
            host="127.0.0.1",
            port=self.port,
            loop="uvloop",
            ws=compat.websocket_protocol_class(),
            ws_per_message_deflate=False,
            log_config=None,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> FastPathServer:
        """Run uvicorn and wait until it serves."""
        self.thread.start()
        wait_until(lambda: self.server.started, 10, message="uvicorn started")
        return self

    def on_loop(self, function, *args):
        """FUNCTION(*ARGS) run on the server's event loop (awaited when it is a coroutine function): its result."""
        import asyncio

        async def run():
            result = function(*args)
            return await result if inspect.isawaitable(result) else result

        loop = next(iter(self.server.servers)).get_loop()
        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def session(self, sid: str | None = None):
        """The Engine.IO session SID (the only one when None)."""
        sockets = self.sio.eio.sockets
        return sockets[sid] if sid else next(iter(sockets.values()))

    def stop(self) -> None:
        """Stop uvicorn and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def fast_path_server():
    """A started FastPathServer, stopped after the test."""
    server = FastPathServer().start()
    yield server
    server.stop()


def eio_message(n: int, pad: int = 0) -> str:
    """The Engine.IO MESSAGE text of Socket.IO event "x" carrying N."""
    return "42" + json.dumps(["x", {"n": n, "pad": "p" * pad}])


def test_websocket_protocol_class_engineio_websocket_protocols_and_websocket_fast_send(fast_path_server):
    hooks = "websocket_protocol_class / engineio_websocket_protocols / websocket_fast_send / engineio_backlog"
    from engineio import async_socket
    from engineio import packet as ep
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from backend.web.broadcast import text_frame
    from tests.chaos.hostile import raw_socketio

    require(callable(getattr(WebSocketsSansIOProtocol, "handle_connect", None)), hooks, "uvicorn handle_connect gone")
    upgrade = getattr(async_socket.AsyncSocket, "_upgrade_websocket", None)
    require(upgrade is not None, hooks, "python-engineio AsyncSocket._upgrade_websocket is gone")
    parameters = list(inspect.signature(getattr(upgrade, "qs_original", upgrade)).parameters)
    require(parameters == ["self", "environ"], hooks, f"_upgrade_websocket takes {parameters}, not (self, environ)")

    server = fast_path_server
    eio = server.sio.eio
    frame = lambda n, pad=0: text_frame(eio_message(n, pad).encode())  # noqa: E731
    send = lambda sid, data, now=None: compat.websocket_fast_send(eio, sid, data, now or time.time())  # noqa: E731
    ws = raw_socketio(server.url, rcvbuf=4096, timeout=20)
    require(ws.recv().startswith("40"), hooks, "no connect ack")
    session = server.session()
    sid = session.sid
    require(isinstance(session.__dict__.get("qs_websocket"), compat.websocket_protocol_class()), hooks, "no protocol")

    def idle() -> bool:
        return server.on_loop(lambda: not session.queue.qsize() and any(not g.done() for g in session.queue._getters))

    wait_until(idle, 10, message="the connect ack written")
    require(server.on_loop(send, sid, frame(1)) == "sent", hooks, "an idle websocket was not written")

    async def queue_then_send():
        await eio.send_packet(sid, ep.Packet(ep.MESSAGE, eio_message(2)[1:]))
        return send(sid, frame(99))

    require(server.on_loop(queue_then_send) == "queued", hooks, "written past a queued packet")
    wait_until(idle, 10, message="packet 2 written")

    def overdue():
        session.last_ping = time.time() - 2 * eio.ping_timeout  # as if a ping went unanswered
        try:
            return send(sid, frame(99))
        finally:
            session.last_ping = None

    require(server.on_loop(overdue) == "dropped", hooks, "written to a client whose ping timed out")
    require(server.on_loop(send, "no-such-sid", frame(99)) == "gone", hooks, "a gone client")

    # The client reads nothing now: 64 KB frames until the transport's buffer passes its high-water mark.
    fill, n = [], 100
    while not fill or fill[-1] == "sent":
        fill.append(server.on_loop(send, sid, frame(n, 65536)))
        n += 1
        require(len(fill) < 2000, hooks, "the transport never paused writing")
    require(fill[-1] == "blocked", hooks, f"a full transport: {fill[-3:]}")
    last = n - 2  # the blocked frame was not written: the caller would queue it
    packets, unsent = server.on_loop(compat.engineio_backlog, eio, sid)
    require(packets == 0 and unsent > 65536, hooks, f"backlog of a full transport: {packets} packets, {unsent} bytes")

    # Queued now, the writer takes packet 3 and waits inside uvicorn's send for the transport to drain.
    server.on_loop(eio.send_packet, sid, ep.Packet(ep.MESSAGE, eio_message(3)[1:]))
    wait_until(lambda: server.on_loop(session.queue.qsize) == 0, 10, message="the writer took packet 3")
    require(server.on_loop(send, sid, frame(99)) == "busy", hooks, "written while the writer held a packet")

    numbers = []
    while len(numbers) < 2 + (last - 100 + 1) + 1:
        text = ws.recv()  # websocket-client checks each frame; bytes of two frames mixed would not decode
        if text == "2":
            continue
        numbers.append(json.loads(text[2:])[1]["n"])
    ws.close()
    expected = [1, 2, *range(100, last + 1), 3]
    require(numbers == expected, hooks, f"frames out of order: {numbers[:6]}… not {expected[:6]}…")

    # A long-polling session has no websocket of its own: always the library's way.
    import requests

    opened = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=5).text
    polling_sid = json.loads(opened[opened.index("{") :])["sid"]
    require(server.on_loop(send, polling_sid, frame(99)) == "transport", hooks, "wrote to a polling session")
    require(server.on_loop(compat.engineio_backlog, eio, polling_sid)[1] == 0, hooks, "polling session bytes")


def test_engineio_cut(fast_path_server):
    hook = "engineio_cut"
    from tests.chaos.hostile import raw_socketio

    server = fast_path_server
    disconnected = []
    server.sio.on("disconnect", lambda sid, reason: disconnected.append(reason))
    ws = raw_socketio(server.url, timeout=10)
    require(ws.recv().startswith("40"), hook, "no connect ack")
    session = server.session()
    require(server.on_loop(compat.engineio_cut, server.sio.eio, session.sid), hook, "a live session was not cut")
    require(session.closed, hook, "the session is not closed")
    wait_until(lambda: disconnected, 10, message="the disconnect handler")
    import websocket

    with pytest.raises((websocket.WebSocketConnectionClosedException, OSError)):  # EOF, or a reset
        while True:
            ws.recv()  # the transport was aborted: EOF or a reset, never another message
    require(not server.on_loop(compat.engineio_cut, server.sio.eio, "no-such-sid"), hook, "cut a gone session")


def test_engineio_ping_wheel(fast_path_server):
    hooks = "engineio_ping_wheel"
    from engineio import async_server, async_socket

    from backend.web.ping_wheel import PING_FRAME
    from tests.chaos.hostile import raw_socketio

    library = async_socket.AsyncSocket
    for name in ("schedule_ping", "_send_ping", "poll", "send"):
        require(callable(getattr(library, name, None)), hooks, f"python-engineio AsyncSocket.{name} is gone")
    connect_source = inspect.getsource(async_server.AsyncServer._handle_connect)
    stored, scheduled = connect_source.find("self.sockets[sid] = s"), connect_source.find("s.schedule_ping()")
    require(0 <= stored < scheduled, hooks, "AsyncServer._handle_connect no longer stores a session before its ping")

    server = fast_path_server
    eio = server.sio.eio
    eio.ping_interval, eio.ping_timeout = 0.5, 0.5  # engine.io's writer deadline: 1 s
    waiting = []
    send_ping = call(hooks, compat.engineio_ping_wheel, server.sio, waiting.append)
    ws = raw_socketio(server.url, timeout=10)
    require(ws.recv().startswith("40"), hooks, "no connect ack")
    session = server.session()
    require(isinstance(session, library) and type(session) is not library, hooks, "the session was not re-classed")
    require(waiting == [session] and session.last_ping is None, hooks, f"the handshake scheduled {waiting}")
    tasks = server.on_loop(lambda: [t.get_coro().__qualname__ for t in asyncio.all_tasks()])
    require(not [t for t in tasks if "_send_ping" in t], hooks, f"a ping task per client still runs: {tasks}")

    def idle() -> bool:
        return server.on_loop(lambda: not session.queue.qsize() and any(not g.done() for g in session.queue._getters))

    wait_until(idle, 10, message="the connect ack written")
    before = time.time()
    require(server.on_loop(send_ping, session, PING_FRAME) == "sent", hooks, "not written")
    require(ws.recv() == "2" and session.last_ping >= before, hooks, "no PING, or last_ping not set when it went")
    ws.send("3")
    wait_until(lambda: len(waiting) == 2, 5, message="the PONG scheduling the next ping")
    require(session.last_ping is None, hooks, "last_ping is not None while the next ping waits")

    # Only PONGs from the client and nothing through the queue for over the 1 s deadline: the writer still runs.
    quiet_until = time.monotonic() + 1.5
    while time.monotonic() < quiet_until:
        ws.send("3")
        time.sleep(0.15)
    require(server.on_loop(send_ping, session, None) == "queue", hooks, "not queued")
    require(ws.recv() == "2", hooks, "the writer of an idle websocket ended at engine.io's poll deadline")

    server.on_loop(session.close, False, True)
    require(server.on_loop(send_ping, session, PING_FRAME) is None, hooks, "pinged a closed one")
    ws.close()


# --- a stranger's websocket frames (the websocket protocol of backend/web/server.py) ----------------------------


async def echo_websocket(scope, receive, send):
    """An ASGI app accepting websockets and reading them until they close."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def test_websocket_protocol_class_fails_bad_utf8_quietly(caplog):
    hook = "websocket_protocol_class (send_receive_event_to_app)"
    import uvicorn
    import websocket

    from harness.ports import free_port

    port = free_port()
    config = uvicorn.Config(
        echo_websocket, host="127.0.0.1", port=port, ws=compat.websocket_protocol_class(), log_config=None
    )
    server = uvicorn.Server(config)
    thread = in_thread(server.run)
    try:
        wait_until(lambda: server.started, 10, message="uvicorn started")
        with caplog.at_level("INFO"):
            for first in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_CLOSE):
                ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=5)
                # In one write: a text frame that is not UTF-8 (or a close), then another that is not either.
                frames = [websocket.ABNF.create_frame(b"\xff\xfe" if first == 1 else b"\x03\xe8", first)]
                frames.append(websocket.ABNF.create_frame(b"ok \xc3\x28", websocket.ABNF.OPCODE_TEXT))
                ws.sock.sendall(b"".join(frame.format() for frame in frames))
                answer = ws.recv_data(control_frame=True)
                ws.close()
                require(answer[0] == websocket.ABNF.OPCODE_CLOSE, hook, f"answered {answer}, not a close")
            wait_until(lambda: len(server.server_state.connections) == 0, 5, message="connections closed")
        records = [r for r in caplog.records if r.name.startswith(("uvicorn", "asyncio"))]
        require(not [r for r in records if r.exc_info], hook, f"a traceback was logged: {records}")
        require(not [r for r in records if r.levelname == "ERROR"], hook, f"an error was logged: {records}")
    finally:
        server.should_exit = True
        thread.join(10)


def test_requests_bodies_capped():
    hook = "requests_bodies_capped"
    import requests

    from harness.hostile_receiver import HostileReceiver, wait_closed
    from tasks.attempt_deadline import attempt_deadline, current_answer_bytes  # the hook's one user

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
