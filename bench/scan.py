"""Scan throughput against a loopback exchange with 50 ms latency, and indicator compute.

`python -m bench.scan --exchange URL --redis URL --first I --step S --count N --source raw|ccxt [--at EPOCH_S]`
scans every symbol × TIMEFRAMES × STRATEGIES twice (cold, then warm as a Celery worker's cached scanner would)
with the project's MarketScanner and ccxt's binance (CcxtSource, what MARKET_SOURCE=binance runs), or only GETs
the klines with `raw` (the network floor). The hand-written Binance client this replaced was measured alongside
until it was deleted: docs/benchmarks.md keeps its figures. Both scans fetch every series: the scanner's
"fetched" state is cleared before each, as on the minute a new bar of every timeframe closes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from bench.fanout import private_redis
from bench.procs import Child, loopback_exchange

STRATEGIES = "sma_cross:fast=9,slow=21"  # the default STRATEGIES
ALL_STRATEGIES = "sma_cross;ema_cross;macd;rsi"
TIMEFRAMES = ("1m", "1h")
SOURCES = ("raw", "ccxt")
# Binance's documented REQUEST_WEIGHT per minute (the loopback exchange's exchangeInfo declares it too); ccxt's own
# figure (60000 / rateLimit 50 ms = 1,200) would hold the warm scan, 1,000 requests after the cold one, ~40 s.
BINANCE_WEIGHT_PER_MINUTE = 6000


def symbols(count: int) -> list[str]:
    """COUNT distinct symbol names the exchange serves a default series for."""
    return [f"S{i:04d}USDT" for i in range(count)]


class RawSource:
    """Only the HTTP GET of the klines, no parsing: the floor of a scan."""

    name = "raw"

    def __init__(self, api_url: str):
        """One requests session with a connection per fetch thread, no retries."""
        import requests

        self.api_url, self.session = api_url, requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))

    def fetch(self, symbol, timeframe, limit, now_ms=None):
        """GET and discard."""
        _ = self.session.get(  # the body is read, as a real fetch does
            f"{self.api_url}/api/v3/klines",
            params={"symbol": symbol, "interval": timeframe, "limit": limit + 1},
            timeout=(3.05, 10),
        ).content
        return None


def worker(exchange: str, redis_url: str, names: list[str], kind: str, at: float | None) -> dict:
    """Scan NAMES × TIMEFRAMES twice from AT (epoch s); the wall seconds of each scan and the process's RSS."""
    import psutil

    from backend.publisher import Publisher
    from backend.redis_client import make_redis
    from backend.signal_schema import FETCHED_PREFIX
    from tasks.market import fetch_many
    from tasks.scanner import MarketScanner
    from tasks.strategies import parse_strategies

    strategies = parse_strategies(ALL_STRATEGIES)
    client = make_redis(redis_url)
    markets_s = 0.0
    if kind == "raw":
        source = RawSource(exchange)
        lookback = MarketScanner(source, strategies, None, TIMEFRAMES).lookback

        def scan():
            fetch_many(source, [(s, t) for t in TIMEFRAMES for s in names], lookback, 32)
    else:
        from tasks.market.exchange import CcxtSource  # not imported by the floor's process: its RSS stays its own

        source = CcxtSource("binance", exchange, weight_per_minute=BINANCE_WEIGHT_PER_MINUTE)
        started = time.perf_counter()
        source.check(names, TIMEFRAMES)  # the worker loads the markets at start (worker_init), not in a scan
        markets_s = time.perf_counter() - started
        publisher = Publisher(client, "quantum_signals", 10_000, 65_536)
        scanner = MarketScanner(source, strategies, publisher, TIMEFRAMES)

        def scan():
            for key in client.scan_iter(f"{FETCHED_PREFIX}*", count=1000):
                client.delete(key)
            report = scanner.scan(names)
            if report.errors:
                raise RuntimeError(f"scan errors: {list(report.errors.items())[:3]}")

    if at:
        time.sleep(max(0.0, at - time.time()))
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        scan()
        seconds.append(time.perf_counter() - started)
    rss_mb = psutil.Process().memory_info().rss / 2**20
    return {
        "type": "scanned",
        "cold_s": seconds[0],
        "warm_s": seconds[1],
        "symbols": len(names),
        "markets_s": markets_s,
        "rss_mb": rss_mb,
    }


def run_scan(count: int, workers: int, kind: str = "binance", latency_ms: float = 50.0) -> dict:
    """Scan COUNT symbols × TIMEFRAMES split over WORKERS processes started together; wall time of the slowest."""
    with loopback_exchange(latency_ms) as url:
        names = symbols(count)
        import requests

        requests.post(f"{url}/_control", json={"listed": names}, timeout=10).raise_for_status()
        with private_redis() as redis_server:
            at = time.time() + (4.0 if kind == "ccxt" else 1.5)  # ccxt's import and markets load come first
            children = []
            for w in range(workers):
                part = names[w::workers]
                args = [sys.executable, "-m", "bench.scan", "--exchange", url, "--redis", redis_server.url]
                args += ["--first", str(w), "--step", str(workers), "--count", str(len(part)), "--at", str(at)]
                args += ["--source", kind]
                children.append(Child(args, f"scan-{kind}-{w}", json_stdout=True).start())
            try:
                results = [child.next_message(180, "scanned") for child in children]
            finally:
                for child in children:
                    child.stop()
    cold, warm = max(r["cold_s"] for r in results), max(r["warm_s"] for r in results)
    series = count * len(TIMEFRAMES)
    return {
        "symbols": count,
        "series": series,
        "workers": workers,
        "cold_s": cold,
        "warm_s": warm,
        "symbols_per_s": count / warm,
        "cold_symbols_per_s": count / cold,
        "markets_s": max(r["markets_s"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
    }


def run_scan_repeated(count: int, runs: int = 3) -> dict[str, dict]:
    """Each source RUNS times, interleaved (raw, ccxt, raw, …) so the machine's load hits all alike.

    Per source: the median and min–max of the cold and warm seconds, and each as a ratio to the raw floor's median.
    """
    measured: dict[str, list[dict]] = {kind: [] for kind in SOURCES}
    for _ in range(runs):
        for kind in SOURCES:
            measured[kind].append(run_scan(count, 1, kind))
    floor = {phase: statistics.median(r[f"{phase}_s"] for r in measured["raw"]) for phase in ("cold", "warm")}
    summary = {}
    for kind, results in measured.items():
        row = {"symbols": count, "series": results[0]["series"], "runs": results}
        for phase in ("cold", "warm"):
            values = [r[f"{phase}_s"] for r in results]
            row[f"{phase}_s"] = statistics.median(values)
            row[f"{phase}_spread_s"] = (min(values), max(values))
            row[f"{phase}_ratio"] = row[f"{phase}_s"] / floor[phase]
        row["symbols_per_s"] = count / row["warm_s"]
        row["rss_mb"] = statistics.median(r["rss_mb"] for r in results)
        row["markets_s"] = statistics.median(r["markets_s"] for r in results)
        summary[kind] = row
    return summary


def import_seconds(module: str, runs: int = 3) -> float:
    """Median wall seconds of `import MODULE` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    )


def run_compute(count: int = 1000, bars: int = 500) -> list[tuple[str, dict]]:
    """COUNT symbols × BARS bars: TA-Lib indicators (baseline), decide_last and decisions of all strategies."""
    from tasks.strategies import parse_strategies

    rng = np.random.default_rng(7)
    closes = [100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars))) for _ in range(count)]
    strategies = parse_strategies(ALL_STRATEGIES)
    results = []

    def timed(name, body):
        started = time.perf_counter()
        for close in closes:
            body(close)
        seconds = time.perf_counter() - started
        results.append(
            (name, {"seconds": seconds, "symbols_per_s": count / seconds, "ms_per_symbol": 1000 * seconds / count})
        )

    try:
        import talib

        def talib_all(close):
            talib.SMA(close, 9), talib.SMA(close, 21), talib.EMA(close, 9), talib.EMA(close, 21)
            talib.MACD(close, 12, 26, 9), talib.RSI(close, 14)

        timed("talib", talib_all)
    except ImportError:
        pass
    timed("decide_last", lambda close: [s.decisions(close, start=len(close) - 1) for s in strategies])
    timed("decisions", lambda close: [s.decisions(close) for s in strategies])
    return results


def main() -> None:
    """One scan worker process."""
    parser = argparse.ArgumentParser(prog="python -m bench.scan")
    parser.add_argument("--exchange", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--at", type=float, default=None)
    parser.add_argument("--source", choices=SOURCES, default="binance")
    args = parser.parse_args()
    names = symbols(args.first + args.step * args.count)[args.first :: args.step][: args.count]
    print(json.dumps(worker(args.exchange, args.redis, names, args.source, args.at)), flush=True)


if __name__ == "__main__":
    main()
