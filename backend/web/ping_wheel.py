"""Engine.IO's pings from one timer per process (the ping wheel) instead of a sleeping task per client.

python-engineio pings each client from a task of its own: on every PONG a task sleeps `ping_interval` (25 s),
then puts a PING on the client's queue, which wakes the client's writer task. With 10,000 idle clients that is
400 tasks started and 400 writer wake-ups a second (docs/benchmarks.md). Every client's interval is the same, so
the clients due for a ping are due in the order they were scheduled: a deque of (due time, session) and one
task suffice. A PING is written the way live broadcasts are (backend/web/broadcast.py): to an idle websocket as
one pre-framed websocket frame, to anyone else (long-polling, mid-upgrade, packets queued) through its Engine.IO
queue; with FAST_BROADCAST=0 all go through the queues. What engine.io's PONG deadline does is unchanged.
backend/compat.py holds every private detail (engineio_ping_wheel and the send it returns).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import Any

import socketio

from backend import compat
from backend.web import metrics
from backend.web.broadcast import text_frame

PING_FRAME = text_frame(b"2")  # the Engine.IO packet PING, alone in a websocket text frame
BATCH_S = 0.05  # the pings due within this much of the first one go out together
IDLE_WAKE_S = 1.0  # the loop beats at least this often
HEARTBEAT_STALE_S = 5.0  # readiness fails when the loop has not beaten for this long


class PingWheel:
    """Sends every client of one Socket.IO server its PING when due, from one task (run)."""

    def __init__(self, sio: socketio.AsyncServer, fast: bool = True) -> None:
        """Take over the pings of SIO's clients; FAST writes a PING straight to an idle websocket."""
        self.eio = sio.eio
        self.frame = PING_FRAME if fast else None
        # (due on time.monotonic(), session): appended in due order, as every wait is ping_interval long.
        self.due: deque[tuple[float, Any]] = deque()
        self.heartbeat = float("-inf")
        self.send_ping = compat.engineio_ping_wheel(sio, self.schedule)

    def schedule(self, session: Any) -> None:
        """Ping Engine.IO SESSION one ping_interval from now (a PONG or the handshake calls this)."""
        self.due.append((time.monotonic() + self.eio.ping_interval, session))

    async def run(self) -> None:
        """Send the pings as they fall due, for ever; beat at least every IDLE_WAKE_S."""
        due = self.due
        while True:
            self.beat()
            now = time.monotonic()
            if due and due[0][0] <= now + BATCH_S:
                await self.ping_due(now + BATCH_S)
                continue
            # Nothing waiting: whatever comes in is due one ping_interval from now at the earliest.
            wait = due[0][0] - now if due else self.eio.ping_interval
            await asyncio.sleep(min(wait, IDLE_WAKE_S))

    async def ping_due(self, until: float) -> None:
        """Ping every session due by UNTIL (monotonic), in due order."""
        due, send_ping, frame = self.due, self.send_ping, self.frame
        paths: Counter[str] = Counter()
        try:
            while due and due[0][0] <= until:
                path = await send_ping(due.popleft()[1], frame)
                if path is not None:
                    paths[path] += 1
        finally:
            # one increment per path and batch, not per client (as the broadcaster counts its deliveries)
            for path, count in paths.items():
                metrics.PINGS_SENT.labels(path=path).inc(count)

    def beat(self) -> None:
        """Record that the loop is alive (readiness reads it)."""
        self.heartbeat = time.monotonic()

    def alive(self) -> bool:
        """True when the loop has beaten within HEARTBEAT_STALE_S."""
        return time.monotonic() - self.heartbeat < HEARTBEAT_STALE_S
