"""The chaos suite: the whole stack as separate processes under faults, every signal counted to every client.

Each scenario runs twice: a short version (unmarked) that plain `pytest` / `make test` runs in a few minutes,
and a full one marked `chaos` (10 s outages, a 10-minute soak at 20 signals/s to 500 clients) that pyproject's
addopts (`-m "not chaos"`) leaves out; `pytest -m chaos` / `make chaos` selects it (a later -m replaces
addopts'). At the end a table shows, per scenario: signals produced, deliveries expected, delivered, lost,
duplicated, and the recovery time. CHAOS_SOAK_S and CHAOS_SOAK_CLIENTS stretch the full soak.
"""

from __future__ import annotations

import pytest

from tests.chaos.clients import NodePool, PythonPool
from tests.chaos.harness import Row
from tests.chaos.ledger import Auditor
from tests.chaos.stack import ChaosStack
from tests.harness.polling import wait_until

ROWS = pytest.StashKey[list]()


def pytest_configure(config):
    """The session's table."""
    config.stash[ROWS] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print one table of every scenario that ran."""
    rows: list[Row] = config.stash.get(ROWS, [])
    if not rows:
        return
    header = ("scenario", "produced", "expected", "delivered", "lost", "duplicated", "recovery", "notes")
    lines = [
        (
            r.scenario,
            str(r.produced),
            str(r.expected),
            str(r.delivered),
            str(r.lost),
            str(r.duplicated),
            "-" if r.recovery_s is None else f"{r.recovery_s:.2f} s",
            r.notes,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells):
        return " | ".join(c.ljust(w) if i in (0, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    terminalreporter.write_sep("=", "chaos: signals from production to every client")
    terminalreporter.write_line(fmt(header))
    terminalreporter.write_line("-+-".join("-" * w for w in widths))
    for line in lines:
        terminalreporter.write_line(fmt(line))


@pytest.fixture
def chaos_rows(request) -> list[Row]:
    """The session's summary table; a scenario appends its row."""
    return request.config.stash[ROWS]


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
