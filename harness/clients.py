"""Socket.IO clients of a test: python-socketio recording every event, and the official JS client in Node."""

from __future__ import annotations

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import socketio

from backend import compat
from harness import contract
from harness.polling import wait_until
from harness.processes import ROOT


class RecordingClient:
    """A real python-socketio client that records every event it receives."""

    def __init__(
        self, url: str, auth: dict | None = None, transports=("websocket",), client_options=None, **connect_kwargs
    ):
        """Connect to URL with AUTH (CLIENT_OPTIONS go to socketio.Client) and start recording."""
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False, **(client_options or {}))
        # Recorded in the order the packets arrived, not the order python-engineio's per-message threads ran in.
        compat.socketio_client_events_in_order(self.sio)
        self.sio.on("*", self._record)
        self.sio.on("connect_error", lambda data: self._record("connect_error", data))
        self.sio.on("disconnect", lambda *_: self._record("disconnect"))
        self.sio.connect(url, auth=auth, transports=list(transports), wait_timeout=10, **connect_kwargs)

    def _record(self, event, data=None):
        contract.check_event(event, data)  # against docs/asyncapi.json: a bad payload fails the test
        with self.lock:
            self.events.append((event, data))

    def of(self, event: str) -> list:
        """Payloads of EVENT received so far."""
        with self.lock:
            return [data for name, data in self.events if name == event]

    def signals(self) -> list[dict]:
        """The new_signal payloads received so far."""
        return self.of("new_signal")

    def wait_signals(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until at least COUNT signals arrived; return them."""
        wait_until(lambda: len(self.signals()) >= count, timeout, message=f"{count} signals")
        return self.signals()

    def close(self) -> None:
        """Disconnect."""
        if self.sio.connected:
            self.sio.disconnect()


def close_all(clients) -> None:
    """Close CLIENTS at once, each in its own thread: a long-polling client's close waits until the server ends its
    pending GET (python-engineio's server answers it at the next ping, seconds later), so one after another adds up.
    """
    with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
        list(pool.map(lambda client: client.close(), clients))


class NodeClient:
    """tests/js/client.mjs (the official socket.io-client in Node) as a child, its events read live."""

    def __init__(self, url: str, auth: dict | None = None, count: int = 1, timeout_ms: int = 20000):
        """Start the client; events are collected by a reader thread."""
        self.events: list[dict] = []
        self.process = subprocess.Popen(
            [
                "node",
                str(ROOT / "tests/js/client.mjs"),
                url,
                "--auth",
                json.dumps(auth or {}),
                "--count",
                str(count),
                "--timeout-ms",
                str(timeout_ms),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            if line.strip():
                self.events.append(json.loads(line))

    def of(self, event: str) -> list:
        """Payloads of EVENT so far."""
        return [e["data"] for e in list(self.events) if e["event"] == event]

    def finish(self, timeout: float = 30.0) -> list[dict]:
        """Wait for the client to exit; return all its events."""
        self.process.wait(timeout)
        self.reader.join(5)
        return self.events

    def stop(self) -> None:
        """Kill the client if still running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
