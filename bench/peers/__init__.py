"""The relays under test: this project's web process and the two references, each started on loopback."""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import psutil

from bench.procs import ROOT, Child, log_dir, wait_http_ok
from harness.ports import free_port

PEERS_DIR = Path(__file__).resolve().parent


class Peer:
    """A relay of N server processes on loopback ports; clients are spread over `urls`."""

    name = "peer"
    ready_event = "connect"
    source_addresses = 0  # >0: the load generator spreads its clients over that many loopback addresses

    def __init__(self, processes: int = 1):
        """Nothing starts until start()."""
        self.processes = processes
        self.children: list[Child] = []
        self.ports: list[int] = []

    def command(self, port: int, redis_url: str) -> tuple[list[str], dict[str, str], Path]:
        """Args, extra environment and working folder of one server process."""
        raise NotImplementedError

    def start(self, redis_url: str) -> Peer:
        """Start every process and wait until each is subscribed (GET /readyz 200)."""
        for i in range(self.processes):
            port = free_port()
            args, env, cwd = self.command(port, redis_url)
            child = Child(args, f"{self.name}-{i}", env=env, cwd=cwd).start()
            self.children.append(child)
            self.ports.append(port)
        for child, port in zip(self.children, self.ports):
            wait_http_ok(f"http://127.0.0.1:{port}/readyz", child, timeout=40)
        return self

    @property
    def urls(self) -> list[str]:
        """Socket.IO base URLs."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def pids(self) -> list[int]:
        """PIDs of the server processes (a proxy's included): the CPU and RSS measured."""
        return [child.pid for child in self.children]

    @property
    def proxy_pids(self) -> list[int]:
        """PIDs of a proxy in front of the servers, also in `pids`: their CPU is reported apart as well."""
        return []

    def stop(self) -> None:
        """Stop every process by its PID."""
        for child in self.children:
            child.stop()
        self.children, self.ports = [], []


def procfile_web(project_dir: Path, python: str) -> list[str]:
    """The `web:` command of PROJECT_DIR's Procfile (`python asgi.py`; `python wsgi.py` in older checkouts)."""
    for line in (project_dir / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            args = shlex.split(command)
            return [python, *args[1:]] if args[0] == "python" else args
    raise RuntimeError(f"no web process in {project_dir / 'Procfile'}")


class ProjectPeer(Peer):
    """This project's web process exactly as the Procfile runs it (`python asgi.py`) with PORT and REDIS_URL."""

    name = "project"
    ready_event = "welcome"

    def __init__(self, processes: int = 1, project_dir: Path = ROOT, python: str = sys.executable):
        """PROJECT_DIR may be another checkout (a patched copy) to compare against."""
        super().__init__(processes)
        self.project_dir = Path(project_dir)
        self.python = python

    def command(self, port, redis_url):
        # The load generator opens up to 5,000 clients from 127.0.0.1: no per-address cap.
        env = {"PORT": str(port), "REDIS_URL": redis_url, "MAX_CONNECTIONS_PER_IP": "0"}
        return procfile_web(self.project_dir, self.python), env, self.project_dir


class ProjectNoFastPeer(ProjectPeer):
    """The project's web process with the broadcast fast path off (FAST_BROADCAST=0): every delivery queued."""

    name = "project-nofast"

    def command(self, port, redis_url):
        args, env, cwd = super().command(port, redis_url)
        return args, {**env, "FAST_BROADCAST": "0"}, cwd


class SeedPeer(Peer):
    """The straightforward FastAPI + python-socketio ASGI relay on uvicorn (bench/peers/seed_relay.py)."""

    name = "seed"

    def command(self, port, redis_url):
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.peers.seed_relay:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "2",
        ]
        return args, {"REDIS_URL": redis_url}, ROOT


class NodePeer(Peer):
    """A socket.io 4 server subscribed with the npm `redis` client (bench/peers/node_relay.mjs)."""

    name = "node"

    def command(self, port, redis_url):
        return ["node", str(PEERS_DIR / "node_relay.mjs"), "--port", str(port), "--redis", redis_url], {}, ROOT


class NginxProjectPeer(ProjectPeer):
    """N project web processes behind nginx running deploy/nginx.conf (ip_hash), as deploy/README.md runs them.

    The configuration is rendered by tests/deploy/test_nginx.py's `render` (its ports, upstream servers and paths
    under a temporary prefix; nothing else changed). The load generator connects from 64 loopback addresses so
    that ip_hash spreads the clients; `pids` holds the web processes, nginx's master and its workers.
    """

    name = "project-nginx"
    source_addresses = 64
    INSTALL_HINT = "nginx is not installed: `apt-get install -y nginx` (Debian/Ubuntu)"

    def command(self, port, redis_url):
        args, env, cwd = super().command(port, redis_url)
        return args, {**env, "HTTP_RATE_LIMIT": "100000/second"}, cwd  # every request arrives from nginx's address

    def start(self, redis_url: str) -> Peer:
        """The web processes, then nginx in front of them; ready once nginx proxies /readyz."""
        from harness.nginx import CONF, render  # the tests' renderer too: one place knows the file's shape

        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError(self.INSTALL_HINT)
        super().start(redis_url)
        prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=log_dir()))
        self.listen_port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(render(CONF.read_text(), self.listen_port, list(self.ports), prefix))
        self.nginx = Child(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"],
            "nginx",
        ).start()
        self.children.append(self.nginx)
        wait_http_ok(f"http://127.0.0.1:{self.listen_port}/readyz", self.nginx, timeout=20)
        return self

    @property
    def urls(self) -> list[str]:
        """nginx's address only."""
        return [f"http://127.0.0.1:{self.listen_port}"]

    @property
    def proxy_pids(self) -> list[int]:
        """nginx's master and workers."""
        try:
            return [self.nginx.pid] + [p.pid for p in psutil.Process(self.nginx.pid).children()]
        except psutil.Error:
            return [self.nginx.pid]

    @property
    def pids(self) -> list[int]:
        """The web processes, nginx's master and its workers."""
        return [c.pid for c in self.children if c is not self.nginx] + self.proxy_pids

    def web_urls(self) -> list[str]:
        """Each web process's own address (its /metrics), behind nginx."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]


def make_peer(name: str, processes: int = 1, project_dir: Path = ROOT) -> Peer:
    """A peer by name: project, project-nofast, project-nginx, seed or node."""
    if name == "project-nginx":
        return NginxProjectPeer(processes, project_dir)
    if name == "project":
        return ProjectPeer(processes, project_dir)
    if name == "project-nofast":
        return ProjectNoFastPeer(processes, project_dir)
    if name == "seed":
        return SeedPeer(processes)
    if name == "node":
        return NodePeer(processes)
    raise ValueError(f"unknown peer {name!r}")
