"""Scenario 8: a soak at 20 signals/s to hundreds of clients (official socket.io-client in Node): no loss, no
duplicate, and no memory growth (RSS sampled; the slope is reported)."""

import os
import time

import numpy as np
import pytest

from tests.chaos.harness import Profile, Scenario
from tests.chaos.stack import rss_mb

SHORT_SOAK = Profile("short", outage_s=0, clients=100, stream_s=10, full=False)
# CHAOS_SOAK_S / CHAOS_SOAK_CLIENTS stretch the full soak (e.g. an hour before a release).
FULL_SOAK = Profile(
    "full",
    outage_s=0,
    clients=int(os.environ.get("CHAOS_SOAK_CLIENTS", 500)),
    stream_s=float(os.environ.get("CHAOS_SOAK_S", 600)),
    full=True,
)
PROFILES = [SHORT_SOAK, pytest.param(FULL_SOAK, marks=[pytest.mark.chaos, pytest.mark.timeout(1800)])]
RATE = 20  # signals a second: 20 symbols, one signal each per 1 s bar
MAX_SLOPE_MIB_PER_MIN = 0.5  # after warm-up; the full run must show no growth worth the name


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_soak_no_loss_no_growth(profile, stack_factory, clients, auditors, chaos_rows):
    stack = stack_factory(symbol_count=RATE)
    pool = clients([web.url for web in stack.webs], profile.clients, kind="node")
    scenario = Scenario(
        f"8. soak {profile.stream_s:g}s at {RATE}/s to {profile.clients} clients ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    processes = {p.name: p.pid for p in [*stack.webs, *stack.workers]}
    samples = {name: [] for name in processes}
    scenario.produce()
    started = time.monotonic()
    interval = 5.0 if profile.full else 1.0
    next_sample = started
    while time.monotonic() - started < profile.stream_s:  # the soak lasts stream_s; RSS sampled meanwhile
        for name, pid in processes.items():
            samples[name].append((time.monotonic() - started, rss_mb(pid)))
        next_sample += interval
        time.sleep(max(0.0, next_sample - time.monotonic()))
    rate = scenario.produced() / (time.monotonic() - started)

    slopes = {}
    for name, points in samples.items():
        tail = [(t, rss) for t, rss in points if t >= profile.stream_s / 2]  # after warm-up
        slopes[name] = float(np.polyfit(*zip(*tail), 1)[0]) * 60
    webs = [w.name for w in stack.webs]
    result = scenario.finish(require_signals=int(RATE * profile.stream_s * 0.8))
    latency = pool.last_report.get("latency", {})
    growth = (
        (
            f", slope {max(slopes[w] for w in webs):+.2f} MiB/min (workers "
            f"{max(v for k, v in slopes.items() if k not in webs):+.2f})"
        )
        if profile.full
        else ""
    )
    scenario.rows[-1].notes = (
        f"{rate:.1f} signals/s; web RSS {max(samples[w][-1][1] for w in webs):.0f} MiB"
        f"{growth}; latency p50 {latency.get('p50_ms')} ms p99 {latency.get('p99_ms')} ms"
    )
    assert rate >= RATE * 0.8, f"only {rate:.1f} signals/s produced"
    assert result.lost == 0
    if profile.full:
        assert max(slopes[w] for w in webs) < MAX_SLOPE_MIB_PER_MIN, slopes
