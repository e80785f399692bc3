"""Helpers shared by the tests: polling with a deadline, real server processes, recording clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import socketio

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll PREDICATE until it returns a truthy value; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    """An unused loopback TCP port."""
    from backend.embedded_redis import free_port as _free_port

    return _free_port()


class ServerProcess:
    """A project process (`python wsgi.py`, a Celery worker, …) run as a child with its own env."""

    def __init__(self, args: list[str], env: dict[str, str], name: str, log_dir: Path):
        """Remember how to start it; start() runs it."""
        self.args, self.env, self.name = args, env, name
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        """Start the process with stdout and stderr to its log file."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed right after Popen
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.process.pid

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the process group (the child and anything it forked) and wait for the child."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self.stop(signal.SIGKILL)


class WebServer(ServerProcess):
    """`python wsgi.py` on a free port, exactly as the Procfile runs it."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "web", port: int | None = None):
        """Pick the port and build the environment."""
        self.port = port or free_port()
        super().__init__([sys.executable, "wsgi.py"], {**env, "PORT": str(self.port)}, name, log_dir)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        try:
            return requests.get(self.url + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start(self, wait: bool = True) -> WebServer:
        """Start and wait for readiness."""
        super().start()
        if wait:
            wait_until(lambda: self.ready() or self.process.poll() is not None, 30, 0.05, f"{self.name} ready")
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log()[-3000:]}"
        return self


class RecordingClient:
    """A real python-socketio client that records every event it receives."""

    def __init__(self, url: str, auth: dict | None = None, transports=("websocket",), **connect_kwargs):
        """Connect to URL with AUTH and start recording."""
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._record)
        self.sio.on("connect_error", lambda data: self._record("connect_error", data))
        self.sio.connect(url, auth=auth, transports=list(transports), wait_timeout=10, **connect_kwargs)

    def _record(self, event, data=None):
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
