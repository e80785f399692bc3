"""The relays under test: this project's web process and the two references, each started on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.procs import ROOT, Child, wait_http_ok
from tests.harness.ports import free_port

PEERS_DIR = Path(__file__).resolve().parent


class Peer:
    """A relay of N server processes on loopback ports; clients are spread over `urls`."""

    name = "peer"
    ready_event = "connect"

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
        """PIDs of the server processes."""
        return [child.pid for child in self.children]

    def stop(self) -> None:
        """Stop every process by its PID."""
        for child in self.children:
            child.stop()
        self.children, self.ports = [], []


class ProjectPeer(Peer):
    """This project's web process exactly as the Procfile runs it: `python wsgi.py` with PORT and REDIS_URL."""

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
        return [self.python, "wsgi.py"], env, self.project_dir


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


def make_peer(name: str, processes: int = 1, project_dir: Path = ROOT) -> Peer:
    """A peer by name: project, project-nofast, seed or node."""
    if name == "project":
        return ProjectPeer(processes, project_dir)
    if name == "project-nofast":
        return ProjectNoFastPeer(processes, project_dir)
    if name == "seed":
        return SeedPeer(processes)
    if name == "node":
        return NodePeer(processes)
    raise ValueError(f"unknown peer {name!r}")
