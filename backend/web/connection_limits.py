"""Bounded resources for strangers at the transport level.

`ConnectionLimits` (WSGI middleware, outermost): at most MAX_CONNECTIONS_PER_IP in-flight requests and open
websockets per REMOTE_ADDR (503 over it), request bodies bigger than the largest client packet (for the HTTP
intake: MAX_SIGNAL_BYTES) refused (413) without reading them, and a body that does not arrive within
SOCKET_TIMEOUT cut (408); every refusal closes the connection. `SessionSweeper`: Engine.IO sessions that have
not connected the `/` namespace within CONNECT_TIMEOUT are closed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time

from backend import compat
from backend.web import metrics

log = logging.getLogger(__name__)

NAMESPACE = "/"
INTAKE_PATH = "/api/signals"


class _Released:
    """A WSGI result that calls RELEASE once eventlet has sent it (on close())."""

    def __init__(self, result, release):
        """Wrap RESULT (an iterable, maybe closable)."""
        self.result, self.release = result, release

    def __iter__(self):
        """Iterate the wrapped result."""
        return iter(self.result)

    def close(self):
        """Close the wrapped result, then release the connection slot."""
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.release()


def _body_deadline(environ, seconds: float):
    """A context that interrupts the body read after SECONDS under eventlet (the socket timeout bounds one recv
    only: a client dripping a byte at a time would otherwise hold the request for ever)."""
    if "eventlet.input" not in environ:
        return contextlib.nullcontext()
    import eventlet

    return eventlet.Timeout(seconds, TimeoutError(f"request body not read within {seconds:g} s"))


class ConnectionLimits:
    """WSGI middleware: a per-IP cap on concurrent requests (websockets included) and bounded request bodies."""

    def __init__(
        self,
        app,
        max_per_ip: int,
        max_body_bytes: int,
        body_timeout_s: float,
        body_limits: dict[str, int] | None = None,
    ):
        """Wrap APP; MAX_PER_IP 0 means no cap; BODY_LIMITS: a larger body limit for some paths."""
        self.app = app
        self.max_per_ip = max_per_ip
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits or {}
        self.body_timeout_s = body_timeout_s
        # One eventlet hub runs every request: nothing switches between reading and writing a count.
        self.active: dict[str, int] = {}

    def __call__(self, environ, start_response):
        """Count the request against its address for as long as it runs (a websocket: its whole life)."""
        address = environ.get("REMOTE_ADDR", "")
        if self.max_per_ip and self.active.get(address, 0) >= self.max_per_ip:
            return self.refuse(
                environ,
                start_response,
                "per_ip_cap",
                "503 Service Unavailable",
                f"too many connections from {address} (at most {self.max_per_ip}); close some\n",
            )
        self.active[address] = self.active.get(address, 0) + 1
        released = False

        def release():
            """Give the slot back (once)."""
            nonlocal released
            if not released:
                released = True
                left = self.active.get(address, 1) - 1
                if left > 0:
                    self.active[address] = left
                else:
                    self.active.pop(address, None)

        try:
            refusal = self.read_body(environ)
            if refusal is not None:
                release()
                return self.refuse(environ, start_response, *refusal)
            result = self.app(environ, start_response)
        except BaseException:
            release()
            raise
        if isinstance(result, (list, tuple)):  # already complete (Engine.IO's answers, a finished websocket)
            release()
            return result
        return _Released(result, release)

    def read_body(self, environ) -> tuple[str, str, str] | None:
        """Read the request body into memory within the deadline; (reason, status, text) when it is refused."""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None  # eventlet answers a malformed Content-Length itself before the app runs
        if not chunked and length <= 0:
            return None
        limit = self.body_limits.get(environ.get("PATH_INFO", ""), self.max_body_bytes)
        too_large = (
            "body_too_large",
            "413 Content Too Large",
            f"request body larger than {limit} bytes\n",
        )
        if length > limit:
            return too_large
        incomplete = ("body_incomplete", "400 Bad Request", "request body ended before its Content-Length\n")
        try:
            with _body_deadline(environ, self.body_timeout_s):
                body = environ["wsgi.input"].read(limit + 1 if chunked else length)
        except TimeoutError:  # the deadline or the socket timeout
            return (
                "body_timeout",
                "408 Request Timeout",
                f"request body did not arrive within {self.body_timeout_s:g} s\n",
            )
        except (OSError, ValueError):  # a reset, or broken chunked framing
            return incomplete
        if len(body) > limit:
            return too_large
        if not chunked and len(body) < length:
            return incomplete
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None

    @staticmethod
    def refuse(environ, start_response, reason: str, status: str, text: str):
        """Answer STATUS with TEXT, count REASON, and close the connection without reading any body."""
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        body = text.encode()
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if "eventlet.input" in environ:
            return compat.eventlet_respond_and_close(environ, status, headers, body)
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]


class SessionSweeper:
    """Closes Engine.IO sessions that have not connected the `/` namespace within CONNECT_TIMEOUT seconds."""

    def __init__(self, socketio, connect_timeout_s: float):
        """Bind to the Flask-SocketIO extension; start() runs the sweep in a background task."""
        self.socketio = socketio
        self.connect_timeout_s = connect_timeout_s
        self.interval_s = max(0.25, min(1.0, connect_timeout_s / 4))
        self.unconnected_since: dict[str, float] = {}
        self.started = False

    def start(self) -> None:
        """Run the sweep loop in a background task (once)."""
        if not self.started:
            self.started = True
            self.socketio.start_background_task(self.run)

    def run(self) -> None:
        """Sweep every interval for ever; a failed sweep is logged in one line and the next one runs."""
        while True:
            try:
                self.sweep(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the sweeper must outlive any one bad sweep
                log.warning("session sweep failed: %s: %s", type(exc).__name__, exc)
            self.socketio.sleep(self.interval_s)

    def sweep(self, now: float) -> int:
        """Close the sessions unconnected for CONNECT_TIMEOUT as of NOW; return how many."""
        server = self.socketio.server
        sessions = compat.engineio_sessions(server)
        since = self.unconnected_since
        for gone in since.keys() - sessions.keys():
            del since[gone]
        cut = 0
        for eio_sid in sessions:
            if server.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None:
                since.pop(eio_sid, None)
                continue
            # A session is first seen up to one interval after it opened: the grace is never shorter.
            if now - since.setdefault(eio_sid, now) >= self.connect_timeout_s:
                del since[eio_sid]
                if compat.engineio_close_nowait(server, eio_sid):
                    cut += 1
        if cut:
            metrics.IDLE_SESSIONS_CUT.inc(cut)
            log.info(
                "closed %d Engine.IO sessions that did not connect %s within %g s",
                cut,
                NAMESPACE,
                self.connect_timeout_s,
            )
        return cut


def install(app, socketio, settings, max_body_bytes: int) -> None:
    """Wrap APP's WSGI callable in ConnectionLimits; keep a SessionSweeper in app.extensions for the server."""
    # The HTTP intake takes a whole signal, up to MAX_SIGNAL_BYTES; every other body is a client packet.
    intake = {INTAKE_PATH: max(max_body_bytes, settings.max_signal_bytes)}
    app.wsgi_app = ConnectionLimits(
        app.wsgi_app, settings.max_connections_per_ip, max_body_bytes, settings.socket_timeout, intake
    )
    app.extensions["qs_session_sweeper"] = SessionSweeper(socketio, settings.connect_timeout)
