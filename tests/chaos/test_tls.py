"""Scenario 9: the whole pipeline over rediss:// to a test-owned Redis that only speaks TLS (self-signed
certificate, REDIS_URL=rediss://…?ssl_cert_reqs=none as on Heroku), through a Redis restart."""

import time

import pytest

from harness.polling import wait_until
from tests.chaos.harness import FULL, SHORT, Scenario

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_pipeline_over_tls_through_a_restart(profile, stack_factory, clients, auditors, chaos_rows):
    stack = stack_factory(tls=True)
    assert stack.redis_url.startswith("rediss://")
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"9. TLS (rediss://), redis down {profile.outage_s:g}s ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    scenario.produce()
    scenario.wait_produced(4)

    stack.redis.kill()
    down_at = time.monotonic()
    wait_until(lambda: set(stack.ready_codes()) == {503}, 15, 0.1, "/readyz 503 during the outage")
    # The outage lasts outage_s, every web still reporting it on /readyz when it ends.
    wait_until(
        lambda: time.monotonic() - down_at >= profile.outage_s and set(stack.ready_codes()) == {503},
        profile.outage_s + 30,
        0.1,
        f"an outage of {profile.outage_s:g} s seen by every web",
    )
    stack.redis.start()
    scenario.repaired()
    wait_until(lambda: set(stack.ready_codes()) == {200}, 30, 0.1, "/readyz 200 after the restart")
    scenario.measure_recovery()
    scenario.wait_produced(4)
    clients_connected = len(stack.client().client_list())
    scenario.notes.append(f"plain port off; {clients_connected} TLS connections to Redis")
    scenario.finish()
    crashed = [p.name for p in [*stack.webs, *stack.workers, *stack.beats] if not stack.alive(p)]
    assert not crashed, f"crashed: {crashed}"
