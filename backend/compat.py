"""The one place that reaches into libraries' private APIs (docs/architecture.md, "compat fence").

Each hook says what it touches and why; tests/backend/test_compat.py fails naming the hook when a
pinned library changes underneath it. Nothing else in the project may touch a private attribute.
"""

from __future__ import annotations

import asyncio
import http
import time
from collections.abc import Awaitable, Callable
from typing import Any


def _mark(func: Callable[..., Any], **marks: Any) -> None:
    """Set MARKS as attributes of hook FUNC: how a second install finds the first one (and a test the original)."""
    for name, value in marks.items():
        setattr(func, name, value)


def engineio_sessions(server: Any) -> dict[str, Any]:
    """A snapshot {eio_sid: Socket} of every Engine.IO session of SERVER (a python-socketio AsyncServer).

    Reaches into python-engineio's `Server.sockets`: no public API lists the sessions, and the sweeper
    (backend/web/connection_limits.py) must find those that never connected a Socket.IO namespace.
    """
    return dict(server.eio.sockets)


async def engineio_close_nowait(server: Any, eio_sid: str) -> bool:
    """Close Engine.IO session EIO_SID of SERVER (an AsyncServer) without waiting for the client; False when gone.

    Reaches into python-engineio's `AsyncServer.sockets` and `AsyncSocket.close(wait=False, reason=…)`: the
    public `AsyncServer.disconnect` waits until the client has taken the CLOSE packet, which a polling client
    that stopped polling never does, and the caller (the sweeper) must not hang on a stranger. Then it puts
    None on the socket's `queue`, as the sync `Socket.close` does and the async one does not: a websocket's
    writer task ends on it and closes the websocket, which otherwise stayed open until the 45 s poll timeout.
    """
    eio = server.eio
    socket = eio.sockets.get(eio_sid)
    if socket is None:
        return False
    await socket.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
    socket.queue.put_nowait(None)
    eio.sockets.pop(eio_sid, None)
    return True


# The limits on a request head the previous (WSGI) web server had, kept: httptools has none (only the head deadline).
MAX_REQUEST_TARGET_BYTES = 8192
MAX_HEADER_BYTES = 65536


def header_deadline_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class with a deadline (TIMEOUT_S) and size limits on each request head.

    Subclasses `uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` and uses its undocumented parts: the
    parser callbacks `on_message_begin` / `on_url` / `on_header` / `on_headers_complete`, `on_response_complete`
    (which arms the keep-alive timer), `send_400_response` (its answer to a parser error, which a callback's
    exception becomes), and its `transport`, `loop`, `url` and `cycle`. uvicorn times out only an idle
    keep-alive connection, and any byte received cancels that: a client that connects and says nothing, or
    sends half a request head, or drips it a byte at a time (slowloris), held a connection and a file for
    ever; and a head of any size was buffered. A request target over MAX_REQUEST_TARGET_BYTES is answered
    414, header fields over MAX_HEADER_BYTES together 431, and the connection closed.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeadRefused(Exception):
        """A request head over a limit: its answer is sent instead of uvicorn's 400."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        """HttpToolsProtocol with a deadline on each request head, from the connection or the last answer."""

        head_timeout_s = timeout_s

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            """Accept the connection; its first request head is due within the deadline."""
            super().connection_made(transport)  # type: ignore[arg-type]  # uvicorn asks for a Transport; asyncio passes one
            self.head_deadline: asyncio.TimerHandle | None = None
            self.head_refusal: tuple[int, str] | None = None
            self.header_bytes = 0
            self._arm_head_deadline()

        def on_message_begin(self) -> None:
            """A new request head: its header fields are counted from zero."""
            super().on_message_begin()
            self.header_bytes = 0

        def on_url(self, url: bytes) -> None:
            """Take a piece of the request target, refusing one that grows too long."""
            super().on_url(url)
            if len(self.url) > MAX_REQUEST_TARGET_BYTES:
                self._refuse_head(414, f"request target longer than {MAX_REQUEST_TARGET_BYTES} bytes")

        def on_header(self, name: bytes, value: bytes) -> None:
            """Take a header field, refusing header fields too large together."""
            self.header_bytes += len(name) + len(value) + 4
            if self.header_bytes > MAX_HEADER_BYTES:
                self._refuse_head(431, f"request header fields larger than {MAX_HEADER_BYTES} bytes")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            """The head arrived in time: the body has its own deadline (ConnectionLimits)."""
            self._disarm_head_deadline()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            """The answer is out: the next request head is due within the deadline (keep-alive stays as is)."""
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            """Forget the deadline with the connection."""
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to an unparsable request, or the refusal of a head over a limit."""
            if self.head_refusal is None:
                super().send_400_response(msg)
                return
            status, text = self.head_refusal
            body = text.encode()
            head = (
                f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
            self.transport.close()

        def _refuse_head(self, status: int, text: str) -> None:
            # Raised from a parser callback: httptools stops and uvicorn answers through send_400_response.
            self.head_refusal = (status, text)
            raise HeadRefused(text)

        def _arm_head_deadline(self) -> None:
            self._disarm_head_deadline()
            self.head_deadline = self.loop.call_later(self.head_timeout_s, self._head_deadline_passed)

        def _disarm_head_deadline(self) -> None:
            # connection_lost may come before connection_made set the attribute.
            deadline = getattr(self, "head_deadline", None)
            if deadline is not None:
                deadline.cancel()
                self.head_deadline = None

        def _head_deadline_passed(self) -> None:
            self.head_deadline = None
            # Between requests only: a request being answered (a long poll, a slow handler) is not cut.
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return HeaderDeadlineProtocol


def engineio_polling_close_never_waits() -> None:
    """Make python-engineio's `AsyncSocket.close` wait for the client to take the CLOSE packet only on a websocket.

    Replaces `engineio.async_socket.AsyncSocket.close` (reads `AsyncSocket.upgraded`): `AsyncServer.disconnect`
    closes with wait=True, which on a polling session waits (`queue.join()`) until a long-poll GET collects the
    packet. A stranger that opened a session and sent one bad POST (an oversized body, an unknown packet) never
    polls again, so that POST's request stayed parked forever with its socket (CLOSE-WAIT; the fd leak of the
    transport-limits issue). On a websocket the writer task collects the packet, so waiting stays as is.
    """
    from engineio import async_socket

    original = async_socket.AsyncSocket.close
    if getattr(original, "qs_polling_never_waits", False):
        return

    async def close(self: Any, wait: bool = True, abort: bool = False, reason: Any = None) -> Any:
        """AsyncSocket.close, waiting only when a websocket writer will collect the CLOSE packet."""
        return await original(self, wait=wait and self.upgraded, abort=abort, reason=reason)

    _mark(close, qs_polling_never_waits=True, qs_original=original)
    async_socket.AsyncSocket.close = close


def engineio_bad_frame_ends_session() -> None:
    """Make a websocket frame python-engineio cannot decode end that session at once, in one log line.

    Wraps the private `engineio.async_socket.AsyncSocket._websocket_handler`: it decodes each frame outside its
    own `try`, so an empty, non-numeric or deeply nested frame ended the handler with an exception (a traceback
    per frame from the server) and without closing the session: the client stayed "connected" (in its rooms,
    emits queued for it) until the ping timeout, and a stranger could make as many such phantoms as they liked.
    """
    from engineio import async_socket

    original = async_socket.AsyncSocket._websocket_handler
    if getattr(original, "qs_wrapped", False):
        return

    async def _websocket_handler(self: Any, ws: Any) -> Any:
        """The library's handler; any error in it closes this session instead of leaving it behind."""
        try:
            return await original(self, ws)
        except Exception as exc:  # noqa: BLE001 - a stranger's frame; one line, then the session is gone
            self.server.logger.warning(
                "%s: undecodable websocket frame (%s); closing the session", self.sid, type(exc).__name__
            )
            await self.queue.put(None)  # lets the handler's writer task end
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return []

    _mark(_websocket_handler, qs_wrapped=True)
    async_socket.AsyncSocket._websocket_handler = _websocket_handler


def socketio_event_errors_logged() -> None:
    """Make an error while dispatching a client's event one log line, not a task's traceback.

    Wraps the private `socketio.AsyncServer._handle_event_internal`, which runs in a task of its own: an event
    name that is a list or an object made it raise TypeError there, and asyncio logged ~20 lines of
    traceback per packet ("Task exception was never retrieved").
    """
    import socketio

    original = socketio.AsyncServer._handle_event_internal
    if getattr(original, "qs_wrapped", False):
        return

    async def _handle_event_internal(self: Any, server: Any, sid: str, *args: Any, **kwargs: Any) -> Any:
        """The library's dispatch; an error is logged in one line and the event dropped."""
        try:
            return await original(self, server, sid, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one client's event must not print a traceback per packet
            self.logger.warning("event from %s dropped: %s: %s", sid, type(exc).__name__, str(exc)[:100])
            return None

    _mark(_handle_event_internal, qs_wrapped=True)
    socketio.AsyncServer._handle_event_internal = _handle_event_internal


def harden_socketio() -> None:
    """Install the hooks that keep one client's bad frame, event or POST from outliving or flooding the server."""
    engineio_bad_frame_ends_session()
    socketio_event_errors_logged()
    engineio_polling_close_never_waits()


def restart_safe_redbeat_scheduler() -> type[Any]:
    """RedBeat's scheduler class, with a `tick` that waits out a Redis restart instead of exiting the beat.

    Stock RedBeat's tick extends its lock and raises when Redis lost it, which ends the beat process. This
    subclass's tick is a copy of RedBeat's that re-takes a lost lock, re-seeds a lost schedule and retries while
    Redis is down. The copy reaches into RedBeat's undocumented parts: `redbeat.schedulers.get_redis`,
    `app.redbeat_conf.schedule_key`, the scheduler's `lock`, `lock_key`, `lock_timeout` and the private
    `_maybe_due_kwargs` (what RedBeat's own tick passes to `maybe_due`). Built on demand so that importing this
    module (the web process does) never imports RedBeat.
    """
    import logging

    import redis
    from redbeat import RedBeatScheduler
    from redbeat.schedulers import get_redis
    from redis.exceptions import LockError

    log = logging.getLogger("tasks.beat_scheduler")

    class RestartSafeRedBeatScheduler(RedBeatScheduler):  # type: ignore[misc]  # redbeat ships no types
        """RedBeat that waits out a Redis outage, re-takes a lost lock and re-seeds a lost schedule."""

        lock: Any  # RedBeat's: its redis-py Lock, or None before the first tick

        def tick(self, min: Callable[[list[float]], float] = min, **kwargs: Any) -> float:
            """One beat: hold the lock, restore the schedule if Redis lost it, send what is due."""
            try:
                if self.lock_key and not self._hold_lock():
                    return self.max_interval  # another beat schedules; stand by
                if not get_redis(self.app).exists(self.app.redbeat_conf.schedule_key):
                    log.warning("beat: the schedule is gone from Redis (restarted without data); restoring it")
                    self.setup_schedule()
                remaining = [self.maybe_due(entry, **self._maybe_due_kwargs) for entry in self.schedule.values()]
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("beat: Redis unavailable (%s); retrying", exc)
                return 1.0
            return min([t for t in remaining if t] + [self.max_interval])

        def _hold_lock(self) -> bool:
            """Extend our lock; when Redis lost it, try to take it again without blocking."""
            if self.lock is None:
                self.lock = get_redis(self.app).lock(self.lock_key, timeout=self.lock_timeout)
            try:
                self.lock.extend(int(self.lock_timeout), replace_ttl=True)
                return True
            except LockError:
                if self.lock.acquire(blocking=False):
                    log.warning("beat: re-acquired the scheduling lock after Redis lost it")
                    return True
                return False

    RestartSafeRedBeatScheduler.__module__ = "tasks.beat_scheduler"
    return RestartSafeRedBeatScheduler


# --- notification attempts (tasks/attempt_deadline.py) ------------------------------------------------------


def requests_bodies_capped(limit_now: Callable[[], int | None]) -> None:
    """Make requests read at most LIMIT_NOW() bytes of a body it would read whole (LIMIT_NOW() None: no cap).

    Apprise's plugins call requests without `stream`, so requests reads a destination's whole answer into memory
    (a 300 MB answer: 300 MB); requests has no option for a cap. This wraps `requests.Session.send` (every
    `requests.post`/`request` goes through it): under a cap it sends with stream=True, reads at most the cap,
    closes the connection, and sets the private `Response._content` and `_content_consumed` as `.content`
    would have (truncated to the cap). Calls that stream themselves are left alone. Installed once per process.
    """
    import requests

    if getattr(requests.Session.send, "qs_capped", False):
        return
    original = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Session.send, reading at most LIMIT_NOW() bytes of a body it would read whole."""
        limit = limit_now()
        if limit is None or kwargs.get("stream", self.stream):
            return original(self, request, **kwargs)
        response = original(self, request, **{**kwargs, "stream": True})
        body = bytearray()
        try:
            for chunk in response.iter_content(16_384):
                body += chunk
                if len(body) > limit:
                    break
        finally:
            response.close()  # the rest of a longer answer is never read
        response._content = bytes(body[:limit])
        response._content_consumed = True  # type: ignore[attr-defined]  # private, untyped: see the docstring
        return response

    _mark(send, qs_capped=True)
    requests.Session.send = send  # type: ignore[method-assign]  # the hook itself: requests has no cap option


# --- the broadcast fast path (backend/web/broadcast.py) ---------------------------------------------------------

# The key under which the websocket protocol puts itself in its ASGI scope's "extensions".
WEBSOCKET_EXTENSION = "qs.websocket"
_websocket_protocol_class: type[asyncio.Protocol] | None = None


def websocket_protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's websockets-sansio protocol class, each connection of it reachable from its ASGI scope.

    Subclasses uvicorn's `WebSocketsSansIOProtocol` (what `ws="auto"` picks) and overrides its private
    `handle_connect`, which builds the scope of an accepted handshake, to add the protocol itself under
    scope["extensions"][WEBSOCKET_EXTENSION]: ASGI gives an app no way to the connection's transport, and the
    fast path writes pre-framed bytes to it (websocket_fast_send). Pass it to uvicorn.Config(ws=…).
    """
    global _websocket_protocol_class
    if _websocket_protocol_class is None:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.protocol import State as WebSocketState

        class FastWebSocketProtocol(WebSocketsSansIOProtocol):
            """uvicorn's sansio websocket protocol, announced in its scope's extensions."""

            def handle_connect(self, event: Any) -> None:
                """The library's handshake; an accepted one's scope names this protocol."""
                super().handle_connect(event)
                scope = self.__dict__.get("scope")  # only an accepted handshake gets one
                if scope is not None:
                    scope["extensions"][WEBSOCKET_EXTENSION] = self

            def send_receive_event_to_app(self) -> None:
                """The library's hand-over of a message; a text one that is not UTF-8 fails the connection quietly.

                uvicorn logs such a message with a traceback (a stranger's junk is no server error) and then calls
                `conn.send_close(1007)` even when the connection is already closing, which raises InvalidState out
                of data_received ("Fatal error on transport"). Reads uvicorn's private `frames`,
                `curr_msg_data_type`, `close_sent`, `conn` and `handle_parser_exception`.
                """
                if self.curr_msg_data_type == "text" and not self.close_sent:
                    try:
                        b"".join(self.frames).decode()
                    except UnicodeDecodeError:
                        self.frames = []
                        if self.conn.state is WebSocketState.OPEN:
                            self.logger.info("a client sent a text message that is not UTF-8; closing (1007)")
                            self.conn.send_close(1007)
                            self.handle_parser_exception()
                        return
                super().send_receive_event_to_app()

        _websocket_protocol_class = FastWebSocketProtocol
    return _websocket_protocol_class


def engineio_websocket_protocols() -> None:
    """Record on each python-engineio websocket session the uvicorn protocol under it (`Socket.qs_websocket`).

    Wraps the private `engineio.async_socket.AsyncSocket._upgrade_websocket(self, environ)`, which every
    websocket session passes through (a direct websocket connect and an upgrade from polling alike), and reads
    the ASGI scope python-engineio keeps in `environ["asgi.scope"]`.
    """
    from engineio import async_socket

    original = async_socket.AsyncSocket._upgrade_websocket
    if getattr(original, "qs_protocols", False):
        return

    async def _upgrade_websocket(self: Any, environ: dict[str, Any]) -> Any:
        """The library's upgrade, with the connection's protocol (None when it is not ours) on the session."""
        extensions = (environ.get("asgi.scope") or {}).get("extensions") or {}
        self.qs_websocket = extensions.get(WEBSOCKET_EXTENSION)
        return await original(self, environ)

    _mark(_upgrade_websocket, qs_protocols=True, qs_original=original)
    async_socket.AsyncSocket._upgrade_websocket = _upgrade_websocket


def websocket_fast_send(eio: Any, eio_sid: str, frame: bytes, now: float) -> str:
    """Write FRAME (a whole websocket frame) to client EIO_SID's transport now, if that keeps its order.

    EIO is python-socketio's `AsyncServer.eio`; NOW is time.time(). Returns "sent", or why it did not write, so
    the caller queues the packet the library's way: "gone", "transport" (polling, mid-upgrade, closing, not our
    protocol), "queued" (packets wait in its queue), "busy" (its writer holds packets it has not written yet),
    "blocked" (the transport's buffer is past its high-water mark: uvicorn's own send would wait), "dropped"
    (its ping timed out: the library's send closes the session and drops the packet).
    Reaches into python-engineio's `AsyncServer.sockets`, `AsyncSocket.upgraded/upgrading/closed/closing/
    last_ping/queue`, asyncio.Queue's `_getters` (the writer waits there when it has written everything it took),
    and uvicorn's protocol `transport/handshake_complete/close_sent/disconnected/writable`.
    """
    socket = eio.sockets.get(eio_sid)
    if socket is None:
        return "gone"
    protocol = socket.__dict__.get("qs_websocket")
    if protocol is None or not socket.upgraded or socket.upgrading or socket.closed or socket.closing:
        return "transport"
    queue = socket.queue
    if queue.qsize():
        return "queued"
    for getter in queue._getters:  # the writer parked in queue.get: it holds nothing it has not written
        if not getter.done():
            break
    else:
        return "busy"
    if socket.last_ping and now - socket.last_ping > eio.ping_timeout:
        return "dropped"
    if protocol.close_sent or protocol.disconnected or not protocol.handshake_complete:
        return "transport"
    if not protocol.writable.is_set():
        return "blocked"
    transport = protocol.transport
    if transport.is_closing():
        return "transport"
    transport.write(frame)
    return "sent"


def engineio_backlog(eio: Any, eio_sid: str) -> tuple[int, int]:
    """(packets queued, bytes unsent in the transport's buffer) of client EIO_SID; (0, 0) when it is gone.

    Reaches into python-engineio's `AsyncServer.sockets`, `AsyncSocket.queue` and the `qs_websocket` protocol of
    engineio_websocket_protocols (its `transport`); a polling session has no transport of its own: 0 bytes.
    """
    socket = eio.sockets.get(eio_sid)
    if socket is None:
        return 0, 0
    protocol = socket.__dict__.get("qs_websocket")
    unsent = protocol.transport.get_write_buffer_size() if protocol is not None and protocol.transport else 0
    return socket.queue.qsize(), unsent


async def engineio_cut(eio: Any, eio_sid: str) -> bool:
    """End client EIO_SID's session at once, dropping what is queued for it; False when it was gone.

    Reaches into python-engineio's `AsyncServer.sockets` and `AsyncSocket.close(wait=False, abort=True, …)` (the
    public `disconnect` queues a CLOSE packet behind the backlog and waits for the client to take it), and
    aborts the `qs_websocket` protocol's transport: the writer may be waiting for that transport to drain.
    """
    socket = eio.sockets.get(eio_sid)
    if socket is None:
        return False
    protocol = socket.__dict__.get("qs_websocket")
    if protocol is not None and protocol.transport is not None:
        protocol.transport.abort()  # the writer's pending send ends (ClientDisconnected), the reader sees EOF
    await socket.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
    return True


# --- python-socketio clients (the test harness's RecordingClient; any Python consumer of the signals) ----------


def socketio_client_events_in_order(client: Any) -> None:
    """Make python-socketio's CLIENT (a `socketio.Client`) handle its events one at a time, in arrival order.

    python-engineio's client starts a new thread for every MESSAGE packet it reads (`Client._receive_packet`
    calls `_trigger_event("message", data, run_async=True)`), so the handler of a later event can run before the
    handler of an earlier one (python-socketio issue #382): a recorder saw seq 557 before 556 although the bytes
    arrived in order. This wraps the private `_trigger_event` of CLIENT's engine.io client (`client.eio`) so that
    "message" runs in the reader thread itself; handlers must then be quick and must not wait for another event.
    """
    eio = client.eio
    original = eio._trigger_event
    if getattr(original, "qs_in_order", False):
        return

    def _trigger_event(event: str, *args: Any, **kwargs: Any) -> Any:
        """The library's dispatch, synchronous for "message"."""
        if event == "message":
            kwargs["run_async"] = False
        return original(event, *args, **kwargs)

    _mark(_trigger_event, qs_in_order=True)
    eio._trigger_event = _trigger_event


# --- Engine.IO's pings from one timer per process (backend/web/ping_wheel.py) ---------------------------------


class _WheelSessions(dict[str, Any]):
    """python-engineio's `AsyncServer.sockets` of one server: each session stored in it becomes a WHEEL_CLASS."""

    wheel_class: type[Any]

    def __setitem__(self, eio_sid: str, socket: Any) -> None:
        """Store SOCKET, re-classed so that its pings wait on the wheel (`AsyncServer._handle_connect` stores it
        before its first `schedule_ping`)."""
        if type(socket) is self.wheel_class.__base__:
            socket.__class__ = self.wheel_class
        super().__setitem__(eio_sid, socket)


def engineio_ping_wheel(
    server: Any, schedule: Callable[[Any], None]
) -> Callable[[Any, bytes | None], Awaitable[str | None]]:
    """Make the Engine.IO sessions of SERVER (a python-socketio AsyncServer) wait for their pings on SCHEDULE.

    python-engineio's `AsyncSocket.schedule_ping` (called by `AsyncServer._handle_connect` and on every PONG)
    starts a task per client that sleeps `ping_interval`, then sends the PING through the client's queue. For
    SERVER's sessions only, this replaces it: `AsyncServer.sockets` becomes a dict that re-classes each new
    `engineio.async_socket.AsyncSocket` as a subclass whose `schedule_ping` keeps engine.io's rule (only when a
    ping's cycle completed: `last_ping` set; it becomes None while waiting) and calls SCHEDULE(socket) instead
    of starting the task; the send this returns sends the PING when it is due. The subclass's `poll` also waits
    for a websocket's writer without engine.io's deadline (`ping_interval + ping_timeout`): a PING written
    by the fast path does not pass the queue, and the writer of an idle client would otherwise end its
    websocket after 45 s; the reader's own deadline (the same, since the last packet received) still ends
    the session of a client that went silent, and the writer with it (the reader queues None). A polling
    session's `poll` is the library's. Reaches into `AsyncServer.sockets`, `AsyncSocket.schedule_ping`,
    `last_ping`, `poll` and `queue`. Sessions opened after `AsyncServer.disconnect()` of all (a shutdown
    replaces `sockets`) get the library's own ping task.

    Returns send_ping(socket, frame), which sends the PING a session is due now: what python-engineio's
    `AsyncSocket._send_ping` does after its sleep. Nothing for a session closed or closing meanwhile (returns
    None), else `last_ping` = time.time() (its PONG is due within `ping_timeout`: the server's service task
    closes it otherwise) and the PING. With FRAME (the websocket text frame of the Engine.IO packet `2`),
    websocket_fast_send writes it to an idle websocket ("sent"; "gone" when the session left
    `AsyncServer.sockets`); anyone else, or every one when FRAME is None, gets engine.io's
    `AsyncSocket.send(Packet(PING))` through its queue ("queue"). Reaches into `AsyncSocket.closing/closed/
    last_ping/sid/send`.
    """
    from engineio.async_socket import AsyncSocket

    class WheelSocket(AsyncSocket):  # type: ignore[misc]  # python-engineio ships no types
        """python-engineio's AsyncSocket whose pings wait on the wheel."""

        last_ping: float | None  # the library's: when the last PING went out; None while the next one waits

        def schedule_ping(self) -> None:
            """Put this session on the wheel, once the previous ping's cycle completed (engine.io's rule)."""
            if self.last_ping:
                self.last_ping = None
                schedule(self)

        async def poll(self) -> list[Any]:
            """The library's poll; a websocket's writer waits for its next packet without a deadline."""
            if not self.upgraded:
                return await super().poll()
            queue = self.queue
            packets = [await queue.get()]
            queue.task_done()
            if packets == [None]:
                return []
            while not queue.empty():
                pkt = queue.get_nowait()
                queue.task_done()
                if pkt is None:
                    queue.put_nowait(None)  # as the library does: the next poll ends the writer
                    break
                packets.append(pkt)
            return packets

    eio = server.eio
    sessions = _WheelSessions(eio.sockets)
    sessions.wheel_class = WheelSocket
    for eio_sid, socket in list(sessions.items()):
        sessions[eio_sid] = socket  # sessions already open (none, when called as the app is built)
    eio.sockets = sessions

    async def send_ping(socket: Any, frame: bytes | None) -> str | None:
        """Send SOCKET the PING it is due now (see above); the path taken, or None for a closed session."""
        if socket.closing or socket.closed:
            return None
        now = time.time()
        socket.last_ping = now
        if frame is not None:
            path = websocket_fast_send(eio, socket.sid, frame, now)
            if path in ("sent", "gone"):
                return path
        from engineio import packet as engineio_packet

        await socket.send(engineio_packet.Packet(engineio_packet.PING))
        return "queue"

    return send_ping
