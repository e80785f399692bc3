"""Scenario 5: the exchange misbehaves (errors, 429 storms, bans, hangs, garbage, stale bars): nothing bad is
published, no process dies, and signals resume as soon as it behaves again. MARKET_SOURCE=binance is ccxt's
binance: these faults reach ccxt's error mapping (tasks/market/exchange.py)."""

import time
import zlib
from datetime import datetime

import pytest

from harness.exchange import FAULTS
from harness.polling import wait_until
from tests.chaos.harness import FULL, SHORT, Scenario

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]
SHORT_FAULTS = [
    ("http_500", {}),
    ("rate_limit_429", {"retry_after": 1}),
    ("hang", {"hang_s": 3}),
    ("malformed_json", {}),
    ("nan_price", {}),
    ("stale", {"behind_s": 120}),
]
FULL_FAULTS = [
    *((mode, {}) for mode in FAULTS if mode not in ("hang", "rate_limit_429", "ban_418")),
    ("rate_limit_429", {"retry_after": 1}),
    ("rate_limit_429", {"retry_after": 60}),
    ("ban_418", {"retry_after": 2}),
    ("hang", {"hang_s": 3}),
    ("hang", {"hang_s": 8}),
    ("stale", {"behind_s": 120}),
]
# A signal's bar may be this old when published: a slow exchange plus catching up after a fault.
MAX_BAR_AGE_S = 15


def true_signal(signal_id: str) -> tuple[str, float]:
    """(type, price) the consistent exchange's bar behind SIGNAL_ID really had (tests/chaos/exchange.py)."""
    parts = signal_id.split(":")
    symbol, index = parts[0], int(parts[-2]) // 1000
    level = 100 + zlib.crc32(symbol.encode()) % 50
    return ("BUY", level * 1.01) if index % 2 else ("SELL", level * 0.99)


def bad_signals(produced) -> list[str]:
    """Signals whose type/price is not the bar's, or whose bar was already old when published."""
    bad = []
    for item in produced.values():
        kind, price = true_signal(item.id)
        bar_end = int(item.id.split(":")[-2]) / 1000 + 1
        age = datetime.fromisoformat(item.emitted_at.replace("Z", "+00:00")).timestamp() - bar_end
        if item.type != kind or abs(item.price - price) > 1e-6 * price:
            bad.append(f"{item.id}: {item.type} {item.price}, the bar says {kind} {price}")
        elif age > MAX_BAR_AGE_S:
            bad.append(f"{item.id}: published {age:.0f} s after its bar closed")
    return bad


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_exchange_faults_publish_nothing_bad_and_recover(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    faults, hold_s = (FULL_FAULTS, 6.0) if profile.full else (SHORT_FAULTS, 1.5)
    pool = clients([web.url for web in stack.webs], profile.clients)
    source = stack.env()["MARKET_SOURCE"]
    scenario = Scenario(
        f"5. exchange faults x{len(faults)} via {source} ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    scenario.produce()
    scenario.wait_produced(4)

    recoveries = {}
    for mode, options in faults:
        if mode == "stale":
            stack.exchange.control(now_ms=int((time.time() - options["behind_s"]) * 1000))
        else:
            stack.exchange.control(fault={"mode": mode, **options})
        # The fault holds until two scans of every symbol have met it (retries included), and at least hold_s.
        before, since = stack.exchange.counts(), time.monotonic()
        wait_until(
            lambda: (
                time.monotonic() - since >= hold_s
                and all(n >= before.get(symbol, 0) + 2 for symbol, n in stack.exchange.counts().items())
            ),
            60,
            0.1,
            f"two scans of every symbol served with fault {mode}",
        )
        stack.exchange.control(fault=None, now_ms=None)
        scenario.repaired()
        label = f"{mode}({','.join(f'{k}={v}' for k, v in options.items())})" if options else mode
        recoveries[label] = scenario.measure_recovery()
    worst = max(recoveries, key=recoveries.get)
    scenario.recovery_s = recoveries[worst]
    bad = bad_signals(scenario.auditor.since(scenario.mark))
    scenario.notes.append(f"worst {worst}; {len(bad)} bad signals")
    scenario.finish()
    crashed = [p.name for p in [*stack.webs, *stack.workers, *stack.beats] if not stack.alive(p)]
    assert not crashed, f"died while the exchange misbehaved: {crashed}"
    assert not bad, f"signals the market never gave: {bad[:10]}"
