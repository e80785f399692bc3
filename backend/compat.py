"""The one place that reaches into libraries' private APIs (docs/architecture.md, "compat fence").

Each hook says what it touches and why; tests/backend/test_compat.py fails naming the hook when a
pinned library changes underneath it. Nothing else in the project may touch a private attribute.
"""

from __future__ import annotations

from socket import MSG_DONTWAIT


def engineio_socket(server, sid: str, namespace: str = "/"):
    """The Engine.IO socket of Socket.IO client SID, or None when it is gone.

    Reaches into python-engineio's `Server.sockets` (a dict eio_sid → Socket): no public API tells
    how much is queued for one client, and the replay paces itself by that.
    """
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    return server.eio.sockets.get(eio_sid) if eio_sid else None


def engineio_queue_size(server, sid: str, namespace: str = "/") -> int:
    """Packets waiting in the Engine.IO send queue of Socket.IO client SID (0 when gone).

    Reaches into python-engineio's `Socket.queue` (an eventlet/threading Queue).
    """
    socket = engineio_socket(server, sid, namespace)
    return socket.queue.qsize() if socket is not None else 0


def disable_permessage_deflate() -> None:
    """Make eventlet's websocket server never negotiate permessage-deflate.

    Replaces eventlet's private `WebSocketWSGI._negotiate_permessage_deflate` with one that accepts
    nothing: eventlet has no option for it, and per-client compression of every broadcast dominated
    the relay's profile (docs/benchmarks.md).
    """
    from eventlet import websocket

    websocket.WebSocketWSGI._negotiate_permessage_deflate = lambda self, extensions: None


def engineio_sessions(server) -> dict:
    """A snapshot {eio_sid: Socket} of every Engine.IO session of SERVER (the python-socketio Server).

    Reaches into python-engineio's `Server.sockets`: no public API lists the sessions, and the sweeper
    (backend/web/connection_limits.py) must find those that never connected a Socket.IO namespace.
    """
    return dict(server.eio.sockets)


def engineio_close_nowait(server, eio_sid: str) -> bool:
    """Close Engine.IO session EIO_SID of SERVER without waiting for the client; False when it was gone.

    Reaches into python-engineio's `Server.sockets` and `Socket.close(wait=False, reason=…)`: the public
    `Server.disconnect` waits until the client has taken the CLOSE packet, which a polling client that
    stopped polling never does, and the caller (the sweeper) must not hang on a stranger.
    """
    eio = server.eio
    socket = eio.sockets.get(eio_sid)
    if socket is None:
        return False
    socket.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
    eio.sockets.pop(eio_sid, None)
    return True


def engineio_polling_close_never_waits() -> None:
    """Make python-engineio's `Socket.close` wait for the client to take the CLOSE packet only on a websocket.

    Replaces `engineio.socket.Socket.close` (reads `Socket.upgraded`): `Server.disconnect` closes with
    wait=True, which on a polling session blocks until a long-poll GET collects the packet. A stranger that
    opened a session and sent one bad POST (an oversized body, an unknown packet) never polls again, so
    that POST's green thread and its socket stayed parked forever (CLOSE-WAIT; the fd leak of the
    transport-limits issue). On a websocket the writer task collects the packet, so waiting stays as is.
    """
    from engineio import socket as engineio_socket_module

    original = engineio_socket_module.Socket.close
    if getattr(original, "qs_polling_never_waits", False):
        return

    def close(self, wait=True, abort=False, reason=None):
        """Socket.close, waiting only when a websocket writer will collect the CLOSE packet."""
        return original(self, wait=wait and self.upgraded, abort=abort, reason=reason)

    close.qs_polling_never_waits = True
    close.qs_original = original
    engineio_socket_module.Socket.close = close


def eventlet_respond_and_close(environ, status: str, headers: list[tuple[str, str]], body: bytes) -> list:
    """Write a whole response on the client socket and make eventlet close it without reading the body.

    Reaches into eventlet's `wsgi.WSGI_LOCAL.already_handled` (how eventlet's own websocket handler takes a
    connection over) and `Input.get_socket()`: a WSGI app cannot otherwise stop eventlet from reading and
    discarding an unread request body (up to Content-Length) to keep the connection alive. Returns the
    WSGI result to hand back to eventlet.
    """
    from eventlet import wsgi

    head = [
        f"HTTP/1.1 {status}",
        *(f"{name}: {value}" for name, value in headers),
        f"Content-Length: {len(body)}",
        "Connection: close",
        "",
        "",
    ]
    try:
        environ["eventlet.input"].get_socket().sendall("\r\n".join(head).encode("latin-1") + body)
    except OSError:
        pass  # the client is gone: closing is all that is left to do
    wsgi.WSGI_LOCAL.already_handled = True
    return []


def engineio_bad_frame_ends_session() -> None:
    """Make a websocket frame python-engineio cannot decode end that session at once.

    Wraps the private `engineio.socket.Socket._websocket_handler`: it decodes each frame outside its own
    `try`, so an empty, non-numeric or deeply nested frame ended the handler without closing the session.
    The client then stayed "connected" (in its rooms, emits queued for it) until the ping timeout, and a
    stranger could make as many such phantoms as they liked.
    """
    from engineio import socket as engineio_socket_module

    original = engineio_socket_module.Socket._websocket_handler
    if getattr(original, "qs_wrapped", False):
        return

    def _websocket_handler(self, ws):
        """The library's handler; any error in it closes this session instead of leaving it behind."""
        try:
            return original(self, ws)
        except Exception as exc:  # noqa: BLE001 - a stranger's frame; one line, then the session is gone
            self.server.logger.warning(
                "%s: undecodable websocket frame (%s); closing the session", self.sid, type(exc).__name__
            )
            self.queue.put(None)  # lets the handler's writer task end
            self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            return []

    _websocket_handler.qs_wrapped = True
    engineio_socket_module.Socket._websocket_handler = _websocket_handler


def socketio_event_errors_logged() -> None:
    """Make an error while dispatching a client's event one log line, not a traceback printed by eventlet.

    Wraps the private `socketio.Server._handle_event_internal`, which runs in its own green thread: an
    event name that is a list or an object made it raise TypeError there, and eventlet printed ~20 lines
    of traceback per packet, past the log filter (backend/logging_setup.py).
    """
    import socketio

    original = socketio.Server._handle_event_internal
    if getattr(original, "qs_wrapped", False):
        return

    def _handle_event_internal(self, server, sid, *args, **kwargs):
        """The library's dispatch; an error is logged in one line and the event dropped."""
        try:
            return original(self, server, sid, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one client's event must not print a traceback per packet
            self.logger.warning("event from %s dropped: %s: %s", sid, type(exc).__name__, str(exc)[:100])
            return None

    _handle_event_internal.qs_wrapped = True
    socketio.Server._handle_event_internal = _handle_event_internal


def harden_socketio() -> None:
    """Install the hooks that keep one client's bad frame or event from outliving or flooding the server."""
    engineio_bad_frame_ends_session()
    socketio_event_errors_logged()


def restart_safe_redbeat_scheduler():
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

    class RestartSafeRedBeatScheduler(RedBeatScheduler):
        """RedBeat that waits out a Redis outage, re-takes a lost lock and re-seeds a lost schedule."""

        def tick(self, min=min, **kwargs):
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


def requests_bodies_capped(limit_now) -> None:
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

    def send(self, request, **kwargs):
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
        response._content_consumed = True
        return response

    send.qs_capped = True
    requests.Session.send = send


# --- the broadcast fast path (backend/web/broadcast.py) ---------------------------------------------------------


class _Flush(str):
    """The marker python-engineio's writer hands to `ws.send` to make it write a pending remainder first."""


# Its text is an Engine.IO NOOP ("6"): should anything but the wrapped `ws.send` ever see it, it is harmless.
FLUSH = _Flush("6")
_flush_packet = None  # the queue item that carries FLUSH, made when the lanes are installed


class WebsocketLane:
    """The fast path's view of one eventlet websocket: a raw non-blocking write, the writer's in-flight count."""

    __slots__ = ("ws", "fd", "busy", "pending")

    def __init__(self, ws):
        """Wrap WS (eventlet's RFC6455WebSocket on a plain GreenSocket)."""
        self.ws = ws
        self.fd = ws.socket.fd  # the non-blocking OS socket under eventlet's GreenSocket
        self.busy = 0  # green threads inside ws.send (the writer, a control reply, the close)
        self.pending: bytes | None = None  # the unsent tail of a fast-path frame

    def send(self, original, message, **kwargs):
        """eventlet's ws.send, after writing any pending fast-path tail: two frames never interleave."""
        self.busy += 1
        try:
            if self.pending is not None:
                data, self.pending = self.pending, None
                self.ws._send(data)  # eventlet's locked sendall: blocks only this green thread
            if message is FLUSH:
                return None
            return original(message, **kwargs)
        finally:
            self.busy -= 1


def _lane_eligible(ws) -> bool:
    from eventlet import greenio, websocket

    return (
        isinstance(ws, websocket.RFC6455WebSocket)
        and not ws.client
        and not ws.extensions  # no permessage-deflate: the same bytes are valid for every client
        and type(ws.socket) is greenio.GreenSocket  # not TLS: the bytes go to the OS socket as they are
    )


def engineio_websocket_lanes() -> None:
    """Give every eventlet websocket session of python-engineio a WebsocketLane while its handler runs.

    Wraps the private `engineio.socket.Socket._websocket_handler(self, ws)` and replaces `send` on that
    eventlet `RFC6455WebSocket` instance (whose `socket` is eventlet's GreenSocket, `.fd` the OS socket,
    `_send` its locked `sendall`): the broadcast fast path writes one pre-framed message to many sockets
    itself, so it must know when python-engineio's writer (or a control reply, or the closing frame) is
    in the middle of a frame, and a tail the fast path could not write must go out before any other frame.
    """
    from engineio import socket as engineio_socket_module

    original = engineio_socket_module.Socket._websocket_handler
    if getattr(original, "qs_lanes", False):
        return

    def _websocket_handler(self, ws):
        """The library's handler, with a lane on this session for as long as it runs."""
        if not _lane_eligible(ws):
            return original(self, ws)
        lane = WebsocketLane(ws)
        send = ws.send
        ws.send = lambda message, **kwargs: lane.send(send, message, **kwargs)
        self.qs_lane = lane
        try:
            return original(self, ws)
        finally:
            self.qs_lane = None

    _websocket_handler.qs_lanes = True
    _websocket_handler.qs_original = original
    engineio_socket_module.Socket._websocket_handler = _websocket_handler

    global _flush_packet
    if _flush_packet is None:
        from engineio import packet

        class FlushPacket(packet.Packet):
            """A queue item whose encoding is FLUSH: the writer's ws.send then writes the lane's pending tail."""

            def encode(self, b64=False):
                """FLUSH, whatever the transport asks."""
                return FLUSH

        _flush_packet = FlushPacket(packet.NOOP)


def websocket_fast_send(server, eio_sid: str, frame: bytes) -> str:
    """Write FRAME (a whole websocket frame) to client EIO_SID's OS socket now, if that keeps the order.

    Returns "sent" (written whole), "partial" (written in part: the tail is handed to the client's writer,
    which sends it before anything else), "dropped" (the client's ping timed out: closing, and dropped as
    python-engineio's `Socket.send` drops it), or why it did not write, so the caller queues the packet
    the normal way: "gone", "transport" (polling, mid-upgrade, closing, no lane), "queued" (packets wait in
    its queue), "busy" (a frame is in flight on it, or its writer is not parked), "blocked" (the OS socket
    took nothing), "failed" (the OS socket raised: the connection is breaking).
    Reaches into python-engineio's `Server.sockets`, `Socket.upgraded/upgrading/closed/closing`,
    `Socket.queue` (eventlet's Queue: `qsize`, `getting` — the writer parks in `get` when idle) and
    `check_ping_timeout`, and the WebsocketLane of engineio_websocket_lanes.
    """
    socket = server.eio.sockets.get(eio_sid)
    if socket is None:
        return "gone"
    lane = socket.__dict__.get("qs_lane")
    if lane is None or not socket.upgraded or socket.upgrading or socket.closed or socket.closing:
        return "transport"
    queue = socket.queue
    if queue.qsize():
        return "queued"
    # getting(): the writer is parked in queue.get, so it holds no dequeued packet it has not written yet
    # (between taking one and calling ws.send it never yields); busy: someone is inside ws.send.
    if lane.busy or lane.pending is not None or not queue.getting():
        return "busy"
    if not socket.check_ping_timeout():
        return "dropped"
    try:
        # MSG_DONTWAIT: never wait, whatever eventlet did to the fd's blocking mode
        sent = lane.fd.send(frame, MSG_DONTWAIT)
    except BlockingIOError:
        return "blocked"
    except OSError:
        return "failed"  # the connection is breaking: queued, the writer finds out and closes the session
    if sent < len(frame):
        lane.pending = frame[sent:]
        queue.put(_flush_packet)  # wakes the writer, which writes the tail before anything queued after it
        return "partial"
    return "sent"


# --- python-socketio clients (the test harness's RecordingClient; any Python consumer of the signals) ----------


def socketio_client_events_in_order(client) -> None:
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

    def _trigger_event(event, *args, **kwargs):
        """The library's dispatch, synchronous for "message"."""
        if event == "message":
            kwargs["run_async"] = False
        return original(event, *args, **kwargs)

    _trigger_event.qs_in_order = True
    eio._trigger_event = _trigger_event
