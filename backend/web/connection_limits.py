"""Bounded resources for strangers at the transport level.

`ConnectionLimits` (ASGI middleware, inside the Host check): at most MAX_CONNECTIONS_PER_IP in-flight requests
and open websockets per client address (503 over it), request bodies bigger than the largest client packet (for
the HTTP intake: MAX_SIGNAL_BYTES) refused (413) without reading them, and a body that does not arrive within
SOCKET_TIMEOUT cut (408); every refusal closes the connection. The request head has its own deadline in the
server's protocol (backend/compat.py, `header_deadline_protocol`). `SessionSweeper`: Engine.IO sessions that
have not connected the `/` namespace within CONNECT_TIMEOUT are closed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import socketio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import compat
from backend.web import metrics
from backend.web.security import header, respond

log = logging.getLogger(__name__)

NAMESPACE = "/"
INTAKE_PATH = "/api/signals"


class Refusal(Exception):
    """A request refused at the transport level: the metric's reason, the status and the text answered."""

    def __init__(self, reason: str, status: int, text: str):
        """Refuse with STATUS and TEXT, counted under REASON."""
        super().__init__(text)
        self.reason, self.status, self.text = reason, status, text


class ConnectionLimits:
    """ASGI middleware: a per-IP cap on concurrent requests (websockets included) and bounded request bodies."""

    def __init__(
        self,
        app: ASGIApp,
        max_per_ip: int,
        max_body_bytes: int,
        body_timeout_s: float,
        body_limits: dict[str, int] | None = None,
    ) -> None:
        """Wrap APP; MAX_PER_IP 0 means no cap; BODY_LIMITS: a larger body limit for some paths."""
        self.app = app
        self.max_per_ip = max_per_ip
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits or {}
        self.body_timeout_s = body_timeout_s
        # One event loop runs every request and nothing awaits between reading and writing a count.
        self.active: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request against its address for as long as it runs (a websocket: its whole life)."""
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        address = scope["client"][0] if scope.get("client") else ""
        if self.max_per_ip and self.active.get(address, 0) >= self.max_per_ip:
            text = f"too many connections from {address} (at most {self.max_per_ip}); close some\n"
            return await self.refuse(scope, send, Refusal("per_ip_cap", 503, text))
        self.active[address] = self.active.get(address, 0) + 1
        try:
            if scope["type"] == "http":
                try:
                    body_receive = await self.read_body(scope, receive)
                except Refusal as refusal:
                    return await self.refuse(scope, send, refusal)
                if body_receive is None:
                    return None  # the client left before its body arrived: nobody to answer
                receive = body_receive
            await self.app(scope, receive, send)
        finally:
            left = self.active.get(address, 1) - 1
            if left > 0:
                self.active[address] = left
            else:
                self.active.pop(address, None)

    async def read_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """The request body read into memory within the deadline, as a new RECEIVE; None when the client left.

        Raises Refusal for a body over its limit (unread when Content-Length says so) or too slow.
        """
        chunked = "chunked" in header(scope, b"transfer-encoding").lower()
        try:
            length = int(header(scope, b"content-length") or 0)
        except ValueError:
            length = 0  # the server's parser refuses a malformed Content-Length before the app runs
        if not chunked and length <= 0:
            return receive
        limit = self.body_limits.get(scope["path"], self.max_body_bytes)
        too_large = Refusal("body_too_large", 413, f"request body larger than {limit} bytes\n")
        if length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        metrics.CONNECTIONS_REFUSED.labels("body_incomplete").inc()
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise Refusal(
                "body_timeout", 408, f"request body did not arrive within {self.body_timeout_s:g} s\n"
            ) from None
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            """The whole body once, then what the server says next (a disconnect)."""
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
        """Answer the refusal in plain text, count it, and have the server close the connection (body unread)."""
        metrics.CONNECTIONS_REFUSED.labels(refusal.reason).inc()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        await respond(scope, send, refusal.status, headers, refusal.text.encode())


class SessionSweeper:
    """Closes Engine.IO sessions that have not connected the `/` namespace within CONNECT_TIMEOUT seconds."""

    def __init__(self, sio: socketio.AsyncServer, connect_timeout_s: float) -> None:
        """Sweep the sessions of SIO (a socketio.AsyncServer); run() is the loop the app's lifespan runs."""
        self.sio = sio
        self.connect_timeout_s = connect_timeout_s
        self.interval_s = max(0.25, min(1.0, connect_timeout_s / 4))
        self.unconnected_since: dict[str, float] = {}

    async def run(self) -> None:
        """Sweep every interval for ever; a failed sweep is logged in one line and the next one runs."""
        while True:
            try:
                await self.sweep(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - the sweeper must outlive any one bad sweep
                log.warning("session sweep failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval_s)

    async def sweep(self, now: float) -> int:
        """Close the sessions unconnected for CONNECT_TIMEOUT as of NOW; return how many."""
        sessions = compat.engineio_sessions(self.sio)
        since = self.unconnected_since
        for gone in since.keys() - sessions.keys():
            del since[gone]
        cut = 0
        for eio_sid in sessions:
            if self.sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None:
                since.pop(eio_sid, None)
                continue
            # A session is first seen up to one interval after it opened: the grace is never shorter.
            if now - since.setdefault(eio_sid, now) >= self.connect_timeout_s:
                del since[eio_sid]
                if await compat.engineio_close_nowait(self.sio, eio_sid):
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
