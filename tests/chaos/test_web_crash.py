"""Scenario 2: a web process SIGKILLed mid-stream; its clients reconnect elsewhere with `since` and recover the gap."""

import pytest

from harness.polling import wait_until
from tests.chaos.harness import FULL, SHORT, Scenario

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_web_killed_clients_recover_the_gap(profile, stack_factory, clients, auditors, chaos_rows):
    stack = stack_factory(symbol_count=6)
    pool = clients([web.url for web in stack.webs], profile.clients)
    rounds = 3 if profile.full else 1
    scenario = Scenario(
        f"2. web SIGKILL x{2 * rounds} mid-stream ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    scenario.produce()
    scenario.wait_produced(6)

    recoveries = []
    for _ in range(rounds):
        for victim in list(stack.webs[:2]):
            on_victim = [c for c in pool.clients if c.connected and c.url == victim.url]
            victim.kill()
            scenario.repaired()  # a crash has no repair: recovery is timed from the kill
            recoveries.append(scenario.measure_recovery())
            assert all(c.connects >= 2 for c in on_victim), "the killed web's clients reconnected"
            stack.webs.remove(victim)
            stack.add_web(port=victim.port)  # restarted on its port, so clients can come back to it
            scenario.wait_produced(6)
    scenario.recovery_s = max(recoveries)
    scenario.notes.append(f"clients reconnected {sum(c.connects - 1 for c in pool.clients)} times")
    scenario.finish()
    wait_until(lambda: pool.connected() == len(pool.clients), 10, 0.05, "every client connected at the end")
