"""Socket.IO clients that reconnect themselves with their cursor, and record (never dedupe) every signal."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from pathlib import Path

import socketio

from backend import compat
from harness import contract
from harness.polling import wait_until
from harness.processes import ROOT
from tests.chaos.ledger import ClientRecord, Key


class ReconnectingClient:
    """A python-socketio client that, when cut off, connects again (to the next URL) with auth since/epoch.

    Its cursor is the last (epoch, seq) it saw; a `resync` moves it to (new epoch, 0). Every `new_signal`
    is recorded as it arrives, duplicates included, so the ledger can count them.
    """

    def __init__(self, urls: list[str], name: str, auth: dict | None = None):
        """Remember where to connect; start() connects."""
        self.urls = list(urls)
        self.name = name
        self.extra_auth = auth or {}
        self.lock = threading.Lock()
        self.received: list[Key] = []
        self.first_seen: dict[Key, float] = {}  # time.monotonic() of each key's first arrival
        self.ids: dict[Key, str | None] = {}  # the id each key first came with
        self.other: list[dict] = []  # signals without epoch/seq (outside publishers)
        self.start_cursor: Key | None = None
        self.epoch: str | None = None
        self.seq = 0
        self.connects = 0
        self.resyncs = 0
        self.errors: list[str] = []
        self._sio: socketio.Client | None = None
        self.url: str | None = None  # where it is connected now
        self._stopping = threading.Event()
        self._cut = threading.Event()
        self._url_cycle = itertools.cycle(range(len(self.urls)))
        self._thread = threading.Thread(target=self._run, name=f"client-{name}", daemon=True)

    def start(self) -> ReconnectingClient:
        """Connect in a background thread that keeps the client connected until stop()."""
        self._thread.start()
        return self

    def auth(self) -> dict:
        """Connect auth: the cursor once the client has one."""
        with self.lock:
            auth = dict(self.extra_auth)
            if self.epoch is not None:
                auth.update(since=self.seq, epoch=self.epoch)
        return auth

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            url = self.urls[next(self._url_cycle)]
            sio = socketio.Client(reconnection=False)
            compat.socketio_client_events_in_order(sio)  # the cursor follows the arrival order
            sio.on("welcome", self._on_welcome)
            sio.on("resync", self._on_resync)
            sio.on("new_signal", self._on_signal)
            sio.on("disconnect", lambda *_: self._cut.set())
            # Counted on the connect event, in the reader thread before any event after it: counted after
            # connect() returned, a fast server's replay could complete first (a test saw the gap recovered
            # by clients that had not counted their reconnect yet).
            sio.on("connect", self._on_connect)
            self._cut.clear()
            try:
                sio.connect(url, auth=self.auth(), transports=["websocket"], wait_timeout=5)
            except Exception as exc:  # noqa: BLE001 - any failure to connect: try again, bounded backoff
                self.errors.append(f"{url}: {exc}")
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self._sio, self.url = sio, url
            backoff = 0.05
            while not self._stopping.is_set() and not self._cut.wait(0.1):
                if not sio.connected:
                    break
            try:
                sio.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _on_connect(self):
        with self.lock:
            self.connects += 1

    def _on_welcome(self, data):
        contract.check_event("welcome", data)  # against docs/asyncapi.json
        with self.lock:
            if self.epoch is None and isinstance(data, dict):
                self.epoch, self.seq = data.get("epoch"), int(data.get("seq") or 0)
                self.start_cursor = (self.epoch, self.seq)

    def _on_resync(self, data):
        contract.check_event("resync", data)  # against docs/asyncapi.json
        with self.lock:
            self.resyncs += 1
            if isinstance(data, dict) and data.get("epoch"):
                self.epoch, self.seq = data["epoch"], 0

    def _on_signal(self, data):
        contract.check_event("new_signal", data)  # against docs/asyncapi.json
        with self.lock:
            if not isinstance(data, dict) or not isinstance(data.get("seq"), int) or not data.get("epoch"):
                self.other.append(data)
                return
            key = (data["epoch"], data["seq"])
            self.received.append(key)
            self.first_seen.setdefault(key, time.monotonic())
            self.ids.setdefault(key, data.get("id"))
            if key[0] != self.epoch:
                self.epoch, self.seq = key
            elif key[1] > self.seq:
                self.seq = key[1]

    @property
    def connected(self) -> bool:
        """True while a connection is up."""
        return self._sio is not None and self._sio.connected

    def snapshot(self) -> tuple[Key | None, list[Key]]:
        """(start cursor, every key received so far)."""
        with self.lock:
            return self.start_cursor, list(self.received)

    def stop(self) -> None:
        """Disconnect and end the background thread."""
        self._stopping.set()
        self._thread.join(10)


class PythonPool:
    """N ReconnectingClients spread over the web processes."""

    kind = "python"

    def __init__(self, urls: list[str], count: int, auth: dict | None = None):
        """Start COUNT clients, client i first connecting to urls[i % len(urls)]."""
        self.clients = [
            ReconnectingClient(urls[i % len(urls) :] + urls[: i % len(urls)], f"py{i}", auth).start()
            for i in range(count)
        ]

    def wait_welcomed(self, timeout: float = 30) -> None:
        """Wait until every client has its start cursor."""
        wait_until(lambda: all(c.start_cursor for c in self.clients), timeout, 0.05, "every client welcomed")

    def records(self) -> list[ClientRecord]:
        """What every client received so far."""
        out = []
        for client in self.clients:
            start, keys = client.snapshot()
            out.append(ClientRecord.from_keys(start, keys, client.connects, client.resyncs))
        return out

    def connected(self) -> int:
        """How many are connected now."""
        return sum(c.connected for c in self.clients)

    def mismatched(self, produced) -> list[str]:
        """Deliveries whose content is not the signal produced under that (epoch, seq)."""
        out = []
        for client in self.clients:
            with client.lock:
                ids = dict(client.ids)
            out += [
                f"{client.name} {key}: got {ids[key]!r}, produced {item.id!r}"
                for key, item in produced.items()
                if key in ids and ids[key] != item.id
            ]
        return out

    def received_all(self, keys) -> bool:
        """True once every client has received every one of KEYS."""
        wanted = set(keys)
        for client in self.clients:
            with client.lock:
                if not wanted <= client.first_seen.keys():
                    return False
        return True

    def lags(self, produced) -> list[float]:
        """Seconds from each produced signal's appearance in Redis to its arrival, over every client."""
        out = []
        for client in self.clients:
            with client.lock:
                seen = dict(client.first_seen)
            out += [seen[key] - item.seen_at for key, item in produced.items() if key in seen]
        return out

    def stop(self) -> None:
        """Stop every client."""
        for client in self.clients:
            client._stopping.set()
        for client in self.clients:
            client.stop()


class NodePool:
    """tests/chaos/pool.mjs: K official socket.io-client connections in one Node process, same reconnect rules.

    It keeps what each client received as per-epoch seq counts and reports them on request, so hundreds of
    clients at tens of signals a second cost Python nothing until the report.
    """

    kind = "node"

    def __init__(self, urls: list[str], count: int, log_dir: Path, name: str = "pool"):
        """Start the Node process and its COUNT clients."""
        self.count = count
        self.stderr = open(log_dir / f"{name}.stderr.log", "ab")  # noqa: SIM115 - the child writes it; closed in stop()
        self.process = subprocess.Popen(
            ["node", str(ROOT / "tests/chaos/pool.mjs"), "--urls", ",".join(urls), "--clients", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=ROOT,
        )
        self._lines: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._reports = 0
        self.last_report: dict = {}

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip():
                with self._cond:
                    self._lines.append(json.loads(line))
                    self._cond.notify_all()

    def _command(self, text: str) -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def _wait_line(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"node pool: no such line within {timeout}s; exit {self.process.poll()}")
                self._cond.wait(min(remaining, 0.5))

    def wait_welcomed(self, timeout: float = 120) -> None:
        """Wait until every client has its start cursor."""
        self._wait_line(lambda line: line.get("type") == "welcomed", timeout)

    def report(self) -> dict:
        """The pool's current report (counts per client)."""
        self._reports += 1
        number = self._reports
        self._command(f"report {number}")
        return self._wait_line(lambda line: line.get("type") == "report" and line.get("id") == number, 60)

    def records(self) -> list[ClientRecord]:
        """What every client received so far."""
        self.last_report = self.report()
        return [
            ClientRecord(
                tuple(c["start"]) if c["start"] else None,
                {epoch: [tuple(r) for r in ranges] for epoch, ranges in c["ranges"].items()},
                c["dup_total"],
                c["connects"],
                c["resyncs"],
            )
            for c in self.last_report["clients"]
        ]

    def connected(self) -> int:
        """How many are connected now."""
        return self.report()["connected"]

    def stop(self) -> None:
        """Close every connection and end the process (killed if it does not exit)."""
        if self.process.poll() is None:
            try:
                self._command("quit")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.stderr.close()
