"""Scenario 7: clients that stop reading (raw websockets, some asking for a full replay) must not stall the
others, and must not grow the web process's memory without bound."""

import time

import numpy as np
import pytest
import requests

from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.hostile import SteadyPublisher, fill_history, metric, raw_socketio
from tests.chaos.stack import rss_mb
from tests.harness.polling import wait_until

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]
HISTORY, HISTORY_REASON_BYTES = 8000, 4000  # 32 MB of history: a copy per non-reader would be costly
# A stalled reader may cost a bounded amount (a few hundred queued packets), not a copy of the history.
MAX_GROWTH_SHARE = 0.3
MAX_LAG_S = 2.0


def relay_seq(web) -> int:
    """The last seq the web's relay has relayed."""
    return requests.get(web.url + "/readyz", timeout=5).json()["seq"]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_stalled_clients_do_not_stall_others_or_grow_memory(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    per_web = 30 if profile.full else 10  # one in five live-only, the others asking for the whole history (since=0)
    fill_history(stack.client(), HISTORY, HISTORY_REASON_BYTES)
    wait_until(
        lambda: all(relay_seq(web) == int(stack.client().get("qs:seq")) for web in stack.webs),
        30,
        0.1,
        "the relays through the filled history",
    )  # the clients below start after it
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"7. {per_web * len(stack.webs)} stalled readers ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    rss_before = {web.name: rss_mb(web.pid) for web in stack.webs}
    stalled = []
    try:
        for web in stack.webs:
            for n in range(per_web):
                stalled.append(raw_socketio(web.url, {"since": 0} if n % 5 else None, rcvbuf=4096))
        scenario.produce()
        stream = SteadyPublisher(stack.client(), rate=20, prefix=f"slow-{time.time_ns()}", reason_bytes=2000)
        samples = {web.name: [] for web in stack.webs}
        started = time.monotonic()
        duration = 75.0 if profile.full else 4.0
        while time.monotonic() - started < duration:  # the stream runs for `duration`, sampled 4 times a second
            for web in stack.webs:
                samples[web.name].append((time.monotonic() - started, rss_mb(web.pid)))
            time.sleep(0.25)
        if profile.full:  # the server's ping timeout (45 s) has cut every stalled reader by now
            wait_until(
                lambda: sum(metric(w.url, "qs_clients_connected") for w in stack.webs) == len(pool.clients),
                30,
                0.5,
                "the stalled readers disconnected by the server",
            )
        stream.stop()
    finally:
        for ws in stalled:
            ws.sock.close() if ws.sock else None

    growth = {name: max(rss for _, rss in points) - rss_before[name] for name, points in samples.items()}
    lags = pool.lags(scenario.auditor.since(scenario.mark))
    slopes = {}
    for name, points in samples.items():
        tail = [(t, rss) for t, rss in points if t > duration - 15]
        slopes[name] = float(np.polyfit(*zip(*tail), 1)[0]) if len(tail) > 2 else 0.0
    p99 = f"{np.percentile(lags, 99):.2f} s" if lags else "n/a"
    scenario.notes.append(
        f"RSS growth {max(growth.values()):.0f} MiB, last-15s slope {max(slopes.values()):.2f} "
        f"MiB/s; others' lag p99 {p99}"
    )
    scenario.finish()
    assert lags and max(lags) < MAX_LAG_S, f"stalled readers delayed the others: worst lag {max(lags):.2f} s"
    replaying = per_web - per_web // 5
    limit = MAX_GROWTH_SHARE * replaying * HISTORY * HISTORY_REASON_BYTES / 2**20
    assert max(growth.values()) < limit, f"web memory grew by {growth} MiB (limit {limit:.0f})"
    if profile.full:
        assert max(slopes.values()) < 0.2, f"memory still growing after the stalled readers were cut: {slopes}"
