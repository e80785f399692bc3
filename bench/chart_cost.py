"""The cost of keeping charts and outcomes in the scan: 500 symbols scanned with and without the ChartKeeper.

`python -m bench.chart_cost [--symbols 500] [--runs 3] [--latency-ms 50]` scans a loopback exchange (as bench/scan.py
does) from one process with two MarketScanners on the same source and Redis, one with the keeper and one without,
alternating, the exchange's clock moved one bar before every scan so each scan sees a new closed bar (the keeper
appends one bar per pair and scores what is pending). Prints the medians, the spread and the added fraction as JSON,
and the bytes one pair takes with 1,000 bars.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import requests

from bench.fanout import private_redis
from bench.procs import loopback_exchange
from bench.report import Row
from bench.scan import STRATEGIES, symbols

BASE_NOW_MS = 1_764_000_000_000
BAR_MS = 60_000
SCANS_PER_RUN = 2
# A budget no scan of the bench reaches: the bench measures the keeper, not Binance's request weight.
WEIGHT_PER_MINUTE = 60_000


def measure(count: int, runs: int, latency_ms: float) -> dict:
    """Median and spread of the warm scan time of COUNT symbols, without and with the keeper, RUNS times each."""
    from backend.publisher import Publisher
    from backend.redis_client import make_redis
    from tasks.chart_keeper import ChartKeeper
    from tasks.market.exchange import CcxtSource
    from tasks.scanner import MarketScanner
    from tasks.strategies import parse_strategies

    with loopback_exchange(latency_ms) as url, private_redis() as redis_server:
        client = make_redis(redis_server.url)
        names = symbols(count)
        strategies = parse_strategies(STRATEGIES)
        publisher = Publisher(client, "quantum_signals", 10_000, 65_536)
        keeper = ChartKeeper(client, strategies, names, ["1m"], (1, 5, 20), "quantum_signals", scan_source="binance")
        requests.post(url + "/_control", json={"listed": names}, timeout=10).raise_for_status()
        sources = [CcxtSource("binance", url, weight_per_minute=WEIGHT_PER_MINUTE) for _ in range(2)]
        for source in sources:
            source.check(names, ["1m"])  # markets load at the worker's start, not in a scan
        scanners = {
            "without keeper": MarketScanner(sources[0], strategies, publisher, "1m"),
            "with keeper": MarketScanner(sources[1], strategies, publisher, "1m", keeper=keeper),
        }
        bar = [0]

        def redis_cpu() -> float:
            info = client.info("cpu")
            return info["used_cpu_user"] + info["used_cpu_sys"]

        def scan(scanner) -> tuple[float, float, float]:
            """(wall s, this process's CPU s, redis-server's CPU s) of one scan."""
            bar[0] += 1
            now_ms = BASE_NOW_MS + bar[0] * BAR_MS
            requests.post(url + "/_control", json={"now_ms": now_ms}, timeout=5)
            redis_before, cpu_before, started = redis_cpu(), time.process_time(), time.perf_counter()
            report = scanner.scan(names, now_ms=now_ms)
            if scanner.keeper is not None:
                scanner.keeper.flush()  # its last batch, which a worker writes as soon as the scan ends
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
            if report.errors:
                raise RuntimeError(f"scan errors: {list(report.errors.items())[:3]}")
            return wall, cpu, redis_cpu() - redis_before

        for scanner in scanners.values():
            scan(scanner)  # cold: connections, and the keeper's first window per pair
        seconds: dict[str, list[float]] = {name: [] for name in scanners}
        cpu: dict[str, list[float]] = {name: [] for name in scanners}
        redis_s: dict[str, list[float]] = {name: [] for name in scanners}
        for _ in range(runs):
            for name, scanner in scanners.items():
                figures = [scan(scanner) for _ in range(SCANS_PER_RUN)]
                seconds[name].append(sum(f[0] for f in figures) / SCANS_PER_RUN)
                cpu[name].append(sum(f[1] for f in figures) / SCANS_PER_RUN)
                redis_s[name].append(sum(f[2] for f in figures) / SCANS_PER_RUN)
        signals = client.xlen("qs:history")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "symbols": count,
        "runs": runs,
        "latency_ms": latency_ms,
        "seconds": seconds,
        "median_s": medians,
        "spread_s": {name: max(values) - min(values) for name, values in seconds.items()},
        "added": medians["with keeper"] / medians["without keeper"] - 1,
        "cpu_s": cpu,
        "median_cpu_s": cpu_medians,
        "added_cpu": cpu_medians["with keeper"] / cpu_medians["without keeper"] - 1,
        "redis_cpu_s": redis_s,
        "signals_published": signals,
        # Prices as exchanges send them (2 decimals), and the worst case: every price with 17 significant digits.
        "pair_bytes_1000_bars": pair_bytes(decimals=2),
        "pair_bytes_1000_bars_full_precision": pair_bytes(decimals=None),
    }


def pair_bytes(bars: int = 1000, decimals: int | None = 2) -> int:
    """MEMORY USAGE of one pair's stored bars (the default strategy's two series) once it holds BARS bars."""
    from backend.redis_client import make_redis
    from backend.signal_schema import chart_key
    from tasks.chart_keeper import ChartKeeper
    from tasks.market import Candles
    from tasks.strategies import parse_strategies

    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    close = close if decimals is None else np.round(close, decimals)
    times = BASE_NOW_MS + BAR_MS * np.arange(bars)
    high, low, volume = (
        a if decimals is None else np.round(a, decimals)
        for a in (close * 1.001, close * 0.999, rng.uniform(1, 100, bars))
    )
    candles = Candles(times, close, high, low, close, volume, times + BAR_MS - 1)
    with private_redis() as redis_server:
        client = make_redis(redis_server.url)
        strategies = parse_strategies(STRATEGIES)
        keeper = ChartKeeper(client, strategies, ["S0000USDT"], ["1m"], (1, 5, 20), "quantum_signals", scan_source="")
        keeper.keep("S0000USDT", "1m", candles)
        keeper.flush()
        return int(client.memory_usage(chart_key("1m", "S0000USDT"), samples=0))


def scenario(cfg) -> list[Row]:
    """The 500-symbol scan (200 with --quick) with and without the chart keeper, 3 runs each."""
    result = measure(200 if cfg.quick else 500, 3, 50.0)
    cfg.findings["chart-cost"] = result
    rows = []
    for name in ("without keeper", "with keeper"):
        rows.append(
            Row(
                "chart-cost",
                name,
                {"throughput": result["symbols"] / result["median_s"][name]},
                "chart-cost/without keeper",
                f"symbols/s; median {result['median_s'][name]:.3f} s per scan, spread "
                f"{result['spread_s'][name]:.3f} s over {result['runs']} runs"
                + (f"; added {100 * result['added']:.1f} %" if name == "with keeper" else ""),
            )
        )
    return rows


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.chart_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.symbols, args.runs, args.latency_ms), indent=1))


if __name__ == "__main__":
    main()
