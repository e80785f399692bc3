"""Scenario 1: Redis stopped and restarted, with and without its data, while signals flow to every client."""

import re
import time

import pytest

from harness.polling import wait_until
from harness.redis import wipe_redis_data
from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.ledger import missed_bars
from tests.chaos.stack import BAR_MS

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]


@pytest.mark.parametrize("keep_data", [True, False], ids=["with-data", "without-data"])
@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_redis_outage_nothing_lost(profile, keep_data, stack_factory, clients, auditors, chaos_rows):
    stack = stack_factory(symbol_count=4, persist=True)
    pool = clients([web.url for web in stack.webs], profile.clients)
    name = f"1. redis down {profile.outage_s:g}s {'with' if keep_data else 'without'} data ({profile.name})"
    scenario = Scenario(name, stack, pool, chaos_rows, auditors(stack.redis_url))
    stack.exchange.control(latency_ms=400)  # scans last long enough to be caught mid-flight
    scenario.produce()
    scenario.wait_produced(4)
    epoch_before = stack.client().get("qs:epoch")
    requests_before = sum(stack.exchange.counts().values())
    wait_until(lambda: sum(stack.exchange.counts().values()) > requests_before, 5, 0.01, "a scan in flight")

    stack.redis.kill()  # the scan in flight will find Redis gone when it publishes
    down_at = time.monotonic()
    if not keep_data:
        wipe_redis_data(stack.redis)
    wait_until(lambda: set(stack.ready_codes()) == {503}, 15, 0.1, "/readyz 503 on every web during the outage")
    # The outage lasts outage_s, every web still reporting it on /readyz when it ends.
    wait_until(
        lambda: time.monotonic() - down_at >= profile.outage_s and set(stack.ready_codes()) == {503},
        profile.outage_s + 30,
        0.1,
        f"an outage of {profile.outage_s:g} s seen by every web",
    )
    stack.redis.start()
    scenario.repaired()
    wait_until(lambda: set(stack.ready_codes()) == {200}, 30, 0.1, "/readyz 200 on every web after the restart")
    scenario.measure_recovery()
    scenario.wait_produced(4)
    logs = "".join(worker.log() for worker in stack.workers)
    retried = set(re.findall(r"publish of (\S+) failed", logs))
    gave_up = set(re.findall(r"gave up publishing (\S+):", logs))
    published = {item.id for item in scenario.auditor.since(scenario.mark).values()}
    missed = missed_bars(scenario.auditor.since(scenario.mark), BAR_MS)
    scenario.notes.append(
        f"{len(retried)} publishes retried ({len(retried & published)} published, "
        f"{len(gave_up)} given up: bar stale); {sum(map(len, missed.values()))} bars never scanned"
    )
    scenario.finish()
    if not profile.full:  # a short outage: the publish caught mid-flight is retried until it lands
        assert retried and retried <= published, (retried, published)

    epoch_after = stack.client().get("qs:epoch")
    resyncs = [c.resyncs for c in pool.clients]
    assert (epoch_after == epoch_before) == keep_data
    assert all(n == 0 for n in resyncs) if keep_data else all(n >= 1 for n in resyncs), resyncs
    crashed = [p.name for p in [*stack.webs, *stack.workers, *stack.beats] if not stack.alive(p)]
    assert not crashed, f"crashed during the outage: {crashed}"
