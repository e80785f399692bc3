"""The broadcast fast path: frame each signal once and write the same bytes to every idle websocket.

python-engineio delivers a broadcast by queueing one packet per client and waking that client's writer green
thread, which frames and sends it: a queue put, a switch and a send per delivery (docs/benchmarks.md). Like
Node's engine.io (`wsPreEncodedFrame`), this encodes the websocket frame once per signal and writes it to each
client's socket directly when that keeps the client's order: on websocket, nothing queued, no frame in flight.
Everyone else (long-polling, mid-upgrade, a replay or welcome still queued, a slow reader) gets the packet
through its Engine.IO queue as before. backend/compat.py holds every private detail (websocket_fast_send).
"""

from __future__ import annotations

import struct
from collections import Counter

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from backend import compat
from backend.web import metrics

NAMESPACE = "/"
WRITTEN = frozenset({"sent", "partial", "dropped"})  # outcomes of websocket_fast_send that need no queueing


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
    """Emits an event to this process's clients in some rooms, writing pre-framed bytes where it may."""

    def __init__(self, socketio):
        """SOCKETIO is the Flask-SocketIO extension (its python-socketio server is read at each emit)."""
        self.socketio = socketio

    def emit(self, event: str, data, rooms: list[str]) -> None:
        """Send EVENT with DATA to the clients in ROOMS (each once), as socketio.emit(..., ignore_queue=True)."""
        server = self.socketio.server
        encoded = server.packet_class(sio_packet.EVENT, namespace=NAMESPACE, data=[event, data]).encode()
        if isinstance(encoded, list):  # binary attachments: several packets per event, leave them to the library
            self.socketio.emit(event, data, to=rooms, namespace=NAMESPACE, ignore_queue=True)
            return
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(eio_pkt.encode().encode("utf-8"))
        outcomes: Counter[str] = Counter()
        send_packet = server.eio.send_packet
        # get_participants with a list of rooms yields each client once, as python-socketio's own emit does.
        for _sid, eio_sid in server.manager.get_participants(NAMESPACE, rooms):
            outcome = compat.websocket_fast_send(server, eio_sid, frame)
            outcomes[outcome] += 1
            if outcome not in WRITTEN:
                send_packet(eio_sid, eio_pkt)  # the normal path: behind whatever that client has queued
        # one increment per outcome and signal, not per client: the per-delivery cost is what this saves
        for outcome, count in outcomes.items():
            metrics.BROADCAST_DELIVERIES.labels(path=outcome).inc(count)
