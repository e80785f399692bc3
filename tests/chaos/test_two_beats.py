"""Scenario 4: two beat processes keep one schedule: every scan is sent once, and the standby takes over."""

import re
import time
from datetime import datetime

import pytest

from harness.polling import wait_until
from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.ledger import missed_bars

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]
SENT = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Scheduler: Sending due task scan-market"
)


def sends(beat, since: float) -> list[float]:
    """When BEAT sent a scan (epoch seconds), from SINCE on."""
    times = [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() for stamp in SENT.findall(beat.log())]
    return [t for t in times if t >= since]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_two_beats_one_schedule(profile, request, clients, auditors, chaos_rows):
    # The short run watches the shared stack's two beats; the full one kills a beat, so it gets its own stack.
    stack = (
        request.getfixturevalue("stack_factory")(beats=2) if profile.full else request.getfixturevalue("shared_stack")
    )
    began = time.time()
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"4. two beats{', active one killed' if profile.full else ''} ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    scenario.produce()
    scenario.wait_produced(4 * (30 if profile.full else 4), timeout=90)

    active = [beat for beat in stack.beats if sends(beat, began)]
    assert len(active) == 1, [beat.log()[-1500:] for beat in stack.beats]
    if profile.full:
        active[0].kill()
        scenario.repaired()
        standby = next(beat for beat in stack.beats if beat is not active[0])
        wait_until(lambda: sends(standby, began), 30, 0.05, "the standby beat taking over")
        scenario.measure_recovery()
        scenario.wait_produced(4 * 10)
    times = sorted(t for beat in stack.beats for t in sends(beat, began))
    gaps = [b - a for a, b in zip(times, times[1:])]
    missed = missed_bars(scenario.auditor.since(scenario.mark), 1000)
    scenario.notes.append(f"{len(times)} scans sent, closest two {min(gaps):.2f} s apart")
    if missed:
        scenario.notes.append(f"bars never published: {sum(map(len, missed.values()))}")
    scenario.finish()
    assert min(gaps) > 0.5, f"two scans sent for one slot: {gaps}"
