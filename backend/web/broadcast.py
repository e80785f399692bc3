"""Live broadcasts: each signal framed once and written to every idle websocket; slow clients cut at a bound.

python-socketio's `AsyncServer.emit` delivers a broadcast as one task per client, each putting a packet on that
client's Engine.IO queue for its writer task to encode, frame and send: a task, a queue put, a wake-up and a send
per delivery (docs/benchmarks.md). Like Node's engine.io (`wsPreEncodedFrame`), the fast path encodes the
websocket frame once per signal and writes the same bytes to each client's transport when that keeps the
client's order: on websocket, nothing queued, its writer holding nothing unwritten. Everyone else (long-polling,
mid-upgrade, a replay or welcome still queued, a slow reader) gets the packet through its Engine.IO queue as
before. FAST_BROADCAST=0 sends every delivery through the queues.

Either way a client that falls too far behind (SLOW_CLIENT_MAX_PACKETS queued, or SLOW_CLIENT_MAX_BYTES unsent
in its transport's buffer) is disconnected at once, counted and logged: it reconnects with `since` and gets
what it missed from history, instead of holding memory for as long as it keeps answering pings.
backend/compat.py holds every private detail (websocket_fast_send, engineio_backlog, engineio_cut).
"""

from __future__ import annotations

import logging
import struct
import time
from collections import Counter

import socketio
from engineio import packet as eio_packet
from prometheus_client import Counter as PromCounter
from socketio import packet as sio_packet

from backend import compat
from backend.settings import Settings
from backend.web import metrics

log = logging.getLogger(__name__)

NAMESPACE = "/"
SLOW_CLIENTS_CUT = PromCounter(
    "qs_slow_clients_cut_total",
    "Clients disconnected for falling behind: too many packets queued, or too many bytes unsent on their "
    "transport (SLOW_CLIENT_MAX_PACKETS, SLOW_CLIENT_MAX_BYTES)",
    ["reason"],
)


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked websocket text frame carrying PAYLOAD (RFC 6455 §5.2; servers never mask)."""
    length = len(payload)
    if length <= 125:
        header = struct.pack("!BB", 0x81, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class Broadcaster:
    """Emits an event to this process's clients in some rooms, each once, and cuts those that fell behind."""

    def __init__(
        self, sio: socketio.AsyncServer, fast: bool = True, max_packets: int = 1000, max_bytes: int = 1 << 20
    ) -> None:
        """SIO is the AsyncServer; FAST writes pre-framed bytes where it may; MAX_* bound a client's backlog."""
        self.sio = sio
        self.fast = fast
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        compat.engineio_websocket_protocols()

    @classmethod
    def from_settings(cls, sio: socketio.AsyncServer, settings: Settings) -> Broadcaster:
        """The broadcaster SETTINGS ask for: FAST_BROADCAST, SLOW_CLIENT_MAX_PACKETS, SLOW_CLIENT_MAX_BYTES."""
        return cls(sio, settings.fast_broadcast, settings.slow_client_max_packets, settings.slow_client_max_bytes)

    async def emit(self, event: str, data: object, rooms: list[str]) -> None:
        """Send EVENT with DATA to the clients in ROOMS (each once), in order behind what each has queued.

        The recipients are fixed before the first await, as AsyncServer.emit fixes them (backend/web/relay.py).
        """
        sio = self.sio
        # get_participants with a list of rooms yields each client once, as python-socketio's own emit does.
        recipients = list(sio.manager.get_participants(NAMESPACE, rooms))
        encoded = sio.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, data]).encode()
        if isinstance(encoded, list):  # binary attachments: several packets per event, leave them to the library
            await sio.emit(event, data, to=rooms, namespace=NAMESPACE)
            return
        eio = sio.eio
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        paths: Counter[str] = Counter()
        if self.fast:
            frame, now = text_frame(eio_pkt.encode().encode("utf-8")), time.time()
            late = []
            for _sid, eio_sid in recipients:
                path = compat.websocket_fast_send(eio, eio_sid, frame, now)
                paths[path] += 1
                if path not in ("sent", "gone"):
                    late.append(eio_sid)
            # one increment per path and signal, not per client: the per-delivery cost is what this saves
            for path, count in paths.items():
                metrics.BROADCAST_DELIVERIES.labels(path=path).inc(count)
        else:
            late = [eio_sid for _sid, eio_sid in recipients]
        for eio_sid in late:
            if await self._cut_if_behind(eio_sid):
                continue
            await eio.send_packet(eio_sid, eio_pkt)  # the library's way: behind whatever that client has queued

    async def _cut_if_behind(self, eio_sid: str) -> bool:
        """Disconnect client EIO_SID if its backlog passed a bound; True when it did."""
        packets, unsent = compat.engineio_backlog(self.sio.eio, eio_sid)
        if packets < self.max_packets and unsent <= self.max_bytes:
            return False
        reason = "packets" if packets >= self.max_packets else "bytes"
        if not await compat.engineio_cut(self.sio.eio, eio_sid):
            return True
        SLOW_CLIENTS_CUT.labels(reason=reason).inc()
        # rate_limited: a crowd of stalled readers is a few lines, not one per client (backend/logging_setup.py)
        log.warning(
            "disconnected a client that fell behind (%d packets queued, %d bytes unsent; bounds %d packets, "
            "%d bytes): it recovers with since",
            packets,
            unsent,
            self.max_packets,
            self.max_bytes,
            extra={"rate_limited": True},
        )
        return True
