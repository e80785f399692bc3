"""Raw, misbehaving Socket.IO peers: they speak the wire protocol by hand (websocket-client), or not at all."""

from __future__ import annotations

import json
import socket
import threading
import time

import requests
import websocket

from harness.redis import make_publisher


def raw_socketio(url: str, auth: dict | None = None, rcvbuf: int | None = None, timeout: float = 5):
    """A websocket that completed the Engine.IO and Socket.IO handshakes; it reads nothing more by itself."""
    options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)] if rcvbuf else []
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", sockopt=options, timeout=timeout
    )
    opening = ws.recv()
    assert opening.startswith("0{"), opening
    ws.send("40" + (json.dumps(auth) if auth else ""))
    return ws


def metric(url: str, name: str) -> float:
    """A Prometheus value of the web process at URL (0 when absent)."""
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


class SteadyPublisher:
    """Publishes signals through the project's publisher at a fixed rate in a thread (ids prefix-n)."""

    def __init__(self, redis_client, rate: float, prefix: str, reason_bytes: int = 200):
        """Start publishing RATE signals a second."""
        self.publisher = make_publisher(redis_client)
        self.rate, self.prefix, self.reason = rate, prefix, "x" * reason_bytes
        self.sent = 0
        self.errors = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stopping.is_set():
            try:
                self.publisher.publish_signal(
                    {
                        "type": "BUY",
                        "price": 1.0 + self.sent % 1000,
                        "symbol": "BTCUSDT",
                        "id": f"{self.prefix}-{self.sent}",
                        "reason": self.reason,
                    }
                )
                self.sent += 1
            except Exception:  # noqa: BLE001 - counted; the scenario decides whether that matters
                self.errors += 1
            self._stopping.wait(max(0.0, start + self.sent / self.rate - time.monotonic()))

    def stop(self) -> None:
        """Stop publishing."""
        self._stopping.set()
        self._thread.join(5)


def fill_history(redis_client, count: int, reason_bytes: int = 300) -> None:
    """Publish COUNT signals as fast as Redis takes them (a long history to replay)."""
    publisher = make_publisher(redis_client)
    reason = "h" * reason_bytes
    stamp = time.time_ns()
    for n in range(count):
        publisher.publish_signal(
            {"type": "SELL", "price": 2.0, "symbol": "ETHUSDT", "id": f"fill-{stamp}-{n}", "reason": reason}
        )
