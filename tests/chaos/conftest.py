"""The chaos suite: the whole stack as separate processes under faults, every signal counted to every client.

Each scenario runs twice: a short version (unmarked) that plain `pytest` / `make test` runs in a few minutes,
and a full one marked `chaos` (10 s outages, a 10-minute soak at 20 signals/s to 500 clients) that pyproject's
addopts (`-m "not chaos"`) leaves out; `pytest -m chaos` / `make chaos` selects it (a later -m replaces
addopts'). At the end a table shows, per scenario: signals produced, deliveries expected, delivered, lost,
duplicated, and the recovery time. CHAOS_SOAK_S and CHAOS_SOAK_CLIENTS stretch the full soak.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from harness.polling import wait_until
from harness.table import CHAOS_ROW
from tests.chaos.clients import NodePool, PythonPool
from tests.chaos.harness import Row
from tests.chaos.ledger import Auditor
from tests.chaos.stack import ChaosStack


@pytest.fixture
def chaos_rows(request) -> list[Row]:
    """This scenario's rows: handed to the table (harness/table.py) through the test's report, so that under
    pytest-xdist a row recorded in a worker process reaches the controller that prints the table."""
    rows: list[Row] = []
    yield rows
    request.node.user_properties.extend((CHAOS_ROW, asdict(row)) for row in rows)


@pytest.fixture
def stack_factory(tmp_path):
    """Factory: a ChaosStack started with the given layout; every process stopped by PID after the test."""
    stacks: list[ChaosStack] = []

    def make(webs: int = 2, workers: int = 2, beats: int = 1, **options) -> ChaosStack:
        stack = ChaosStack(tmp_path, **options)
        stacks.append(stack)
        return stack.start(webs=webs, workers=workers, beats=beats)

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="session")
def _shared_stack(tmp_path_factory):
    """One stack (2 webs, 2 workers, 2 beats) for the scenarios that leave it intact; stopped at the end."""
    stack = ChaosStack(tmp_path_factory.mktemp("shared-stack"), symbol_count=4)
    try:
        yield stack.start(webs=2, workers=2, beats=2)
    finally:
        stack.stop()


@pytest.fixture
def shared_stack(_shared_stack):
    """The shared stack, made healthy and quiet: every process up, every web ready, the exchange calm."""
    stack = _shared_stack
    stack.heal()  # a scenario that failed may have left a process dead; the next one starts whole
    stack.exchange.control(fault=None, latency_ms=0, now_ms=None, flat=stack.symbols)
    wait_until(lambda: set(stack.ready_codes()) == {200}, 30, 0.1, "every web ready")
    yield stack
    stack.exchange.control(fault=None, latency_ms=0, now_ms=None, flat=stack.symbols)


@pytest.fixture
def clients(tmp_path):
    """Factory: a pool of clients (python or node) that reconnect themselves; stopped after the test."""
    pools = []

    def make(urls: list[str], count: int, kind: str = "python", **options):
        pool = PythonPool(urls, count, **options) if kind == "python" else NodePool(urls, count, tmp_path, **options)
        pools.append(pool)
        pool.wait_welcomed()
        return pool

    yield make
    for pool in pools:
        pool.stop()


@pytest.fixture
def auditors():
    """Factory: Auditors on a Redis URL; stopped after the test."""
    made: list[Auditor] = []

    def make(url: str) -> Auditor:
        auditor = Auditor(url)
        made.append(auditor)
        return auditor

    yield make
    for auditor in made:
        auditor.stop()
