"""Child processes of the benchmark: started with a raised fd limit, stopped by PID, measured with psutil."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
_LIVE: list[Child] = []
_log_dir: Path | None = None


def log_dir() -> Path:
    """This run's folder for child logs and profiles, made on first use."""
    global _log_dir
    if _log_dir is None:
        _log_dir = Path(tempfile.mkdtemp(prefix="qs-bench-"))
    return _log_dir


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: thousands of sockets need thousands of fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Child:
    """One child process; stdout may be read line by line as JSON, stderr goes to a log file."""

    def __init__(
        self,
        args: list[str],
        name: str,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        json_stdout: bool = False,
        stdin: bool = False,
    ):
        """Remember how to start it; start() runs it."""
        self.args, self.name, self.cwd = args, name, cwd
        self.env = {**os.environ, **(env or {})}
        self.json_stdout, self.stdin = json_stdout, stdin
        self.log_path = log_dir() / f"{name}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()

    def start(self) -> Child:
        """Start it in its own session so a terminal ^C reaches only the benchmark, which stops it."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                preexec_fn=raise_fd_limit,
                start_new_session=True,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.json_stdout else log,
                stderr=log,
                text=True,
            )
        _LIVE.append(self)
        if self.json_stdout:
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.lines.put(json.loads(line))
                except ValueError:
                    pass
        self.lines.put(None)

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.process.pid

    def alive(self) -> bool:
        """True while it runs."""
        return self.process is not None and self.process.poll() is None

    def send(self, line: str) -> None:
        """Write one command line to its stdin."""
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def next_message(self, timeout: float, kind: str | None = None) -> dict:
        """The next JSON line (of type KIND), or RuntimeError after TIMEOUT seconds or at exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                message = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                raise RuntimeError(
                    f"{self.name}: no {kind or 'message'} within {timeout:.0f} s; log {self.log_path}"
                ) from None
            if message is None:
                raise RuntimeError(f"{self.name} exited; log {self.log_path}:\n{self.log()[-2000:]}")
            if kind is None or message.get("type") == kind:
                return message

    def log(self) -> str:
        """What it wrote to its log."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM by PID, then SIGKILL by PID after TIMEOUT seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass
        if self in _LIVE:
            _LIVE.remove(self)

    def wait(self, timeout: float) -> int:
        """Wait for it to exit by itself; stop it when it does not."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -1


def stop_all() -> None:
    """Stop every child still running, newest first, each by its own PID."""
    for child in reversed(list(_LIVE)):
        child.stop(timeout=5)


def _on_signal(signum, _frame) -> None:
    stop_all()
    sys.exit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_signal)


def wait_http_ok(url: str, child: Child | None = None, timeout: float = 30.0) -> None:
    """Poll URL until it answers 200; fail early if CHILD exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited before {url} was ready; log:\n{child.log()[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout:.0f} s")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by PIDS."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of PIDS now."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


@contextlib.contextmanager
def loopback_exchange(latency_ms: float):
    """`python -m harness.exchange` answering klines after LATENCY_MS; yields its URL, stops it by PID."""
    from harness.ports import free_port

    port = free_port()
    exchange = Child(
        [sys.executable, "-m", "harness.exchange", "--port", str(port), "--latency-ms", str(latency_ms)],
        "exchange",
    ).start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(url + "/api/v3/ping", exchange, timeout=20)
        yield url
    finally:
        exchange.stop()
