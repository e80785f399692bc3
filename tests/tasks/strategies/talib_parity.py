"""Print how the presets and the generic specs agree with TA-Lib and each other, and the scan cost.

Run: .venv/bin/python tests/tasks/strategies/talib_parity.py (the checkout is found from this file's place).
"""

import sys
import time
from pathlib import Path

import numpy as np
import talib

ROOT = Path(__file__).resolve().parents[3]
# Each preset and the generic spec that must give exactly its signals.
TWINS = {
    "sma_cross:fast=9,slow=21": "cross:fast=SMA(9),slow=SMA(21)",
    "ema_cross:fast=9,slow=21": "cross:fast=EMA(9),slow=EMA(21)",
    "macd:fast=12,slow=26,signal=9": "cross:fast=MACD(12,26,9).macd,slow=MACD(12,26,9).macdsignal",
    "rsi:period=14,lower=30,upper=70": "level:of=RSI(14),lower=30,upper=70",
}


def max_relative(ours, reference):
    """Largest |ours - reference| / |reference| where reference is a non-zero number."""
    assert np.array_equal(np.isnan(ours), np.isnan(reference)), "NaN positions differ"
    valid = ~np.isnan(reference) & (reference != 0)
    return float(np.max(np.abs(ours[valid] - reference[valid]) / np.abs(reference[valid])))


def main():
    sys.path.insert(0, str(ROOT))  # run as a script, the checkout is not on the path
    from tasks.strategies import indicators, parse_strategy

    rng = np.random.default_rng(20261125)
    walks = [100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 5000))) for _ in range(20)]
    worst = {}
    for x in walks:
        for p in (2, 9, 21, 50, 200):
            worst["sma"] = max(worst.get("sma", 0), max_relative(indicators.sma(x, p), talib.SMA(x, p)))
            worst["ema"] = max(worst.get("ema", 0), max_relative(indicators.ema(x, p), talib.EMA(x, p)))
            worst["rsi"] = max(worst.get("rsi", 0), max_relative(indicators.rsi(x, p), talib.RSI(x, p)))
    print("max relative difference from TA-Lib (20 walks x 5000 bars):")
    for name, value in worst.items():
        print(f"  {name:22s} {value:.3e}")

    print("preset vs generic twin, decisions (index, type) on the same 20 walks:")
    for preset, generic in TWINS.items():
        a, b = parse_strategy(preset), parse_strategy(generic)
        pairs = [
            ([(d.index, d.type) for d in a.decisions(x)], [(d.index, d.type) for d in b.decisions(x)]) for x in walks
        ]
        same = all(p == g for p, g in pairs)
        print(f"  {preset:34s} {sum(len(p) for p, _ in pairs):6d} decisions, identical: {same}")

    closes = [100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 500))) for _ in range(1000)]
    for label, specs in (("presets", list(TWINS)), ("generic twins", list(TWINS.values()))):
        strategies = [parse_strategy(s) for s in specs]
        for what, first_bar in (("last bar only", -1), ("all bars", 0)):
            start = time.perf_counter()
            for x in closes:
                for strategy in strategies:
                    strategy.decisions(x, start=first_bar % len(x))
            took = time.perf_counter() - start
            print(f"decisions, {label}, {what}: 1000 symbols x 500 bars x 4 strategies in {took:.3f} s")


if __name__ == "__main__":
    main()
