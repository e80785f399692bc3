"""Scenario 3: a worker SIGKILLed mid-scan while the exchange is slow: the bar is still published, exactly once."""

import os
import re
import signal

import psutil
import pytest

from harness.polling import wait_until
from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.ledger import missed_bars

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]
SLOW_EXCHANGE_MS = 600


def scan_in_flight(worker) -> str | None:
    """The id of a scan_market task the worker received and has not finished, if any."""
    log = worker.log()
    received = re.findall(r"Task tasks\.scan\.scan_market\[([0-9a-f-]+)\] received", log)
    finished = set(re.findall(r"Task tasks\.scan\.scan_market\[([0-9a-f-]+)\] (?:succeeded|raised|failed)", log))
    pending = [task for task in received if task not in finished]
    return pending[-1] if pending else None


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_worker_killed_mid_scan_the_signal_is_published_once(profile, stack_factory, clients, auditors, chaos_rows):
    stack = stack_factory(symbol_count=4)
    pool = clients([web.url for web in stack.webs], profile.clients)
    kills = 4 if profile.full else 1
    scenario = Scenario(
        f"3. worker SIGKILL mid-scan x{kills} ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    stack.exchange.control(latency_ms=SLOW_EXCHANGE_MS)
    scenario.produce()
    scenario.wait_produced(4)

    recoveries = []
    for kill in range(kills):
        requests_before = sum(stack.exchange.counts().values())
        victim = wait_until(
            lambda: next((w for w in stack.workers if scan_in_flight(w)), None),
            20,
            0.01,
            "a worker in the middle of a scan",
        )
        # Its klines requests are at the exchange, which holds them for SLOW_EXCHANGE_MS: kill it now.
        wait_until(lambda: sum(stack.exchange.counts().values()) > requests_before, 5, 0.01, "the scan's requests")
        if kill % 2 == 0:
            victim.kill()  # the whole worker: its unacked task waits for the visibility timeout
            scenario.repaired()
            stack.workers.remove(victim)
            stack.add_worker(wait=False)
        else:
            os.kill(psutil.Process(victim.pid).children()[0].pid, signal.SIGKILL)  # the pool child: WorkerLostError
            scenario.repaired()
        recoveries.append(scenario.measure_recovery())
        for worker in stack.workers:
            stack.wait_worker(worker)
        scenario.wait_produced(4)
    scenario.recovery_s = max(recoveries)
    missed = missed_bars(scenario.auditor.since(scenario.mark), 1000)
    if missed:
        scenario.notes.append(f"bars never published: {sum(map(len, missed.values()))}")
    scenario.finish()
    assert not missed, f"bars whose signal was never published after the kill: {missed}"
