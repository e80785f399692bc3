"""Print the largest relative difference from TA-Lib per indicator, and the scan cost.

Run: .venv/bin/python tests/tasks/strategies/talib_parity.py (the checkout is found from this file's place).
"""

import sys
import time
from pathlib import Path

import numpy as np
import talib

ROOT = Path(__file__).resolve().parents[3]


def max_relative(ours, reference, scale=None):
    """Largest |ours - reference| / |scale| (scale defaults to reference) where reference is a number."""
    assert np.array_equal(np.isnan(ours), np.isnan(reference)), "NaN positions differ"
    scale = reference if scale is None else scale
    valid = ~np.isnan(reference) & (scale != 0)
    return float(np.max(np.abs(ours[valid] - reference[valid]) / np.abs(scale[valid])))


def main():
    sys.path.insert(0, str(ROOT))  # run as a script, the checkout is not on the path
    from tasks.strategies import indicators, parse_strategies

    rng = np.random.default_rng(20261125)
    walks = [100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 5000))) for _ in range(20)]
    worst = {}
    for x in walks:
        for p in (2, 9, 21, 50, 200):
            worst["sma"] = max(worst.get("sma", 0), max_relative(indicators.sma(x, p), talib.SMA(x, p)))
            worst["ema"] = max(worst.get("ema", 0), max_relative(indicators.ema(x, p), talib.EMA(x, p)))
            worst["rsi"] = max(worst.get("rsi", 0), max_relative(indicators.rsi(x, p), talib.RSI(x, p)))
        for args in ((12, 26, 9), (5, 35, 5), (8, 21, 5)):
            for name, mine, theirs in zip(
                ("macd_line", "macd_signal", "macd_hist"), indicators.macd(x, *args), talib.MACD(x, *args)
            ):
                worst[name] = max(worst.get(name, 0), max_relative(mine, theirs))
                per_price = name + " (of price)"
                worst[per_price] = max(worst.get(per_price, 0), max_relative(mine, theirs, x))
    print("max relative difference from TA-Lib (20 walks x 5000 bars):")
    for name, value in worst.items():
        print(f"  {name:22s} {value:.3e}")

    strategies = parse_strategies("sma_cross;ema_cross;macd;rsi")
    closes = [100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 500))) for _ in range(1000)]
    for label, first_bar in (("last bar only", -1), ("all bars", 0)):
        start = time.perf_counter()
        for x in closes:
            for strategy in strategies:
                strategy.decisions(x, start=first_bar % len(x))
        print(f"decisions, {label}: 1000 symbols x 500 bars x 4 strategies in {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
