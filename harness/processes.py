"""The project's processes as children of a test: each with its own env and log file, stopped by its PID."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from harness.polling import wait_until
from harness.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def procfile_command(kind: str, env: dict[str, str]) -> list[str]:
    """The Procfile's command line for KIND, with ${VAR:-default} expanded and `python`/`celery` run from this venv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), command)
            args = shlex.split(command)
            if args[0] == "python":
                return [sys.executable, *args[1:]]
            if args[0] == "celery":
                return [sys.executable, "-m", "celery", *args[1:]]
            return args
    raise AssertionError(f"no {kind!r} process in the Procfile")


class ServerProcess:
    """A project process (`python asgi.py`, a Celery worker, …) run as a child with its own env."""

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

    def alive(self) -> bool:
        """True while the child runs."""
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        """Poll PREDICATE until it holds; fail at once, with the log's tail, if the child exits first."""
        wait_until(lambda: predicate() or not self.alive(), timeout, 0.05, f"{self.name}: {what}")
        assert self.alive(), f"{self.name} exited before {what}:\n{self.log()[-3000:]}"

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
    """The Procfile's `web` (`python asgi.py`) on a free port, exactly as a deployment runs it."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "web", port: int | None = None):
        """Pick the port and build the environment."""
        self.port = port or free_port()
        env = {**env, "PORT": str(self.port)}
        super().__init__(procfile_command("web", env), env, name, log_dir)

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

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for /readyz 200."""
        self.wait_for(self.ready, timeout, "ready")

    def start(self, wait: bool = True, timeout: float = 30.0) -> WebServer:
        """Start and (WAIT) wait for readiness."""
        super().start()
        if wait:
            self.wait_ready(timeout)
        return self


class CeleryProcess(ServerProcess):
    """The Procfile's Celery `worker` (named NAME@host, one child unless WORKER_CONCURRENCY says) or `beat`."""

    def __init__(self, kind: str, env: dict[str, str], name: str, log_dir: Path):
        """Build the command line; start() runs it."""
        env = {"WORKER_CONCURRENCY": "1", **env}
        args = procfile_command(kind, env)
        if kind == "worker":
            args += ["-n", f"{name}@%h"]
        elif kind == "beat":
            args += ["--pidfile", str(log_dir / f"{name}.pid"), "--schedule", str(log_dir / f"{name}.db")]
        else:
            raise ValueError(f"kind must be worker or beat, not {kind!r}")
        super().__init__(args, env, name, log_dir)
        self.kind = kind
        self.node = f"{name}@{socket.gethostname()}"  # what -n NAME@%h expands to
        self._control = None

    def ready(self) -> bool:
        """True when the worker answers a Celery control ping on the broker (it consumes tasks by then)."""
        from celery import Celery

        from backend.redis_client import strip_tls_query, tls_options

        if self._control is None:
            url = self.env["REDIS_URL"]
            self._control = Celery(broker=strip_tls_query(url), broker_use_ssl=tls_options(url) or None)
        try:
            return bool(self._control.control.ping(destination=[self.node], timeout=1))
        except Exception:  # noqa: BLE001 - broker not reachable yet: not ready, ask again
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker answers a ping."""
        assert self.kind == "worker", "only a worker answers pings"
        self.wait_for(self.ready, timeout, "answering a control ping")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the child, then close the control connection."""
        super().stop(sig, timeout)
        if self._control is not None:
            self._control.close()
            self._control = None
