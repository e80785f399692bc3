"""Scan throughput against a loopback exchange with 50 ms latency, and indicator compute.

`python -m bench.scan --exchange URL --redis URL --first I --last J [--raw] [--at EPOCH_S]` scans
symbols I..J-1 twice (cold, then warm as a Celery worker's cached scanner would) with the project's
MarketScanner and BinanceSource, or only GETs their klines with --raw (the network floor).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from bench.fanout import private_redis
from bench.procs import Child, wait_http_ok
from tests.harness.ports import free_port

STRATEGIES = "sma_cross:fast=9,slow=21"  # the default STRATEGIES
ALL_STRATEGIES = "sma_cross;ema_cross;macd;rsi"


def symbols(count: int) -> list[str]:
    """COUNT distinct symbol names the exchange serves a default series for."""
    return [f"S{i:04d}USDT" for i in range(count)]


class RawSource:
    """Only the HTTP GET of the klines, no parsing: the floor of a scan."""

    name = "raw"

    def __init__(self, api_url: str):
        """One pooled session, as BinanceSource builds it."""
        from tasks.market import build_session

        self.api_url, self.session = api_url, build_session()

    def fetch(self, symbol, timeframe, limit, now_ms=None):
        """GET and discard."""
        _ = self.session.get(  # the body is read, as a real fetch does
            f"{self.api_url}/api/v3/klines",
            params={"symbol": symbol, "interval": timeframe, "limit": limit + 1},
            timeout=(3.05, 10),
        ).content
        return None


def worker(exchange: str, redis_url: str, names: list[str], raw: bool, at: float | None) -> dict:
    """Scan NAMES twice from AT (epoch s); return the wall seconds of each scan."""
    from backend.publisher import Publisher
    from backend.redis_client import make_redis
    from tasks.market import BinanceSource, fetch_many
    from tasks.scanner import MarketScanner
    from tasks.strategies import parse_strategies

    strategies = parse_strategies(STRATEGIES)
    if raw:
        source = RawSource(exchange)
        lookback = max(s.lookback for s in strategies)

        def scan():
            fetch_many(source, names, "1m", lookback, 32)
    else:
        publisher = Publisher(make_redis(redis_url), "quantum_signals", 10_000, 65_536)
        scanner = MarketScanner(BinanceSource(exchange), strategies, publisher, "1m")

        def scan():
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
    return {"type": "scanned", "cold_s": seconds[0], "warm_s": seconds[1], "symbols": len(names)}


def run_scan(count: int, workers: int, raw: bool = False, latency_ms: float = 50.0) -> dict:
    """Scan COUNT symbols split over WORKERS processes started together; wall time of the slowest."""
    port = free_port()
    exchange = Child(
        [sys.executable, "-m", "tests.harness.exchange", "--port", str(port), "--latency-ms", str(latency_ms)],
        "exchange",
    ).start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/api/v3/ping", exchange, timeout=20)
        with private_redis() as redis_server:
            names = symbols(count)
            at = time.time() + 1.5
            children = []
            for w in range(workers):
                part = names[w::workers]
                args = [
                    sys.executable,
                    "-m",
                    "bench.scan",
                    "--exchange",
                    f"http://127.0.0.1:{port}",
                    "--redis",
                    redis_server.url,
                    "--first",
                    str(w),
                    "--step",
                    str(workers),
                    "--count",
                    str(len(part)),
                    "--at",
                    str(at),
                ] + (["--raw"] if raw else [])
                children.append(Child(args, f"scan-{w}", json_stdout=True).start())
            try:
                results = [child.next_message(120, "scanned") for child in children]
            finally:
                for child in children:
                    child.stop()
    finally:
        exchange.stop()
    cold, warm = max(r["cold_s"] for r in results), max(r["warm_s"] for r in results)
    return {
        "symbols": count,
        "workers": workers,
        "cold_s": cold,
        "warm_s": warm,
        "symbols_per_s": count / warm,
        "cold_symbols_per_s": count / cold,
    }


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
    parser.add_argument("--raw", action="store_true")
    args = parser.parse_args()
    names = symbols(args.first + args.step * args.count)[args.first :: args.step][: args.count]
    print(json.dumps(worker(args.exchange, args.redis, names, args.raw, args.at)), flush=True)


if __name__ == "__main__":
    main()
