"""`python -m bench.notify_latency`: publish → signed-webhook receipt latency through a real worker and beat.

Starts a private redis-server, the Procfile's worker (both queues) and beat, and a recording receiver on
127.0.0.1; publishes N signals through the project's publisher at RATE per second and prints p50/p99/max of
(receipt time - publish time). Every signal must arrive exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from backend.embedded_redis import EmbeddedRedis
from backend.redis_client import make_redis
from harness.polling import wait_until
from harness.processes import CeleryProcess
from harness.receiver import Receiver
from harness.redis import make_publisher


def percentile(values: list[float], p: float) -> float:
    """The P-th percentile (nearest rank) of VALUES."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def measure(signals: int = 100, rate: float = 10.0) -> dict:
    """One run: p50/p99/max ms of publish → webhook receipt for SIGNALS signals published at RATE a second."""
    logs = Path(tempfile.mkdtemp(prefix="qs-notify-bench-"))
    with EmbeddedRedis() as redis_server, Receiver() as receiver:
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "NOTIFY_URLS": receiver.url("/hook"),
            "NOTIFY_WEBHOOK_SECRET": "bench-secret",
            "PYTHONUNBUFFERED": "1",
        }
        processes = [CeleryProcess(kind, env, kind, logs) for kind in ("worker", "beat")]
        try:
            for process in processes:
                process.start()
            processes[0].wait_ready()
            publisher = make_publisher(make_redis(redis_server.url))
            sent: dict[int, float] = {}
            for _ in range(signals):
                started = time.time()
                signal = publisher.publish_signal({"type": "BUY", "price": 100.0, "symbol": "BTCUSDT"})
                sent[signal["seq"]] = started
                time.sleep(max(0.0, 1 / rate - (time.time() - started)))  # pacing the load, not waiting
            wait_until(lambda: len(receiver.received()) >= signals, 60, 0.05, "every webhook")
            got = [(json.loads(r.body)["seq"], r.at) for r in receiver.received()]
            assert sorted(seq for seq, _ in got) == sorted(sent), "a signal was lost or repeated"
            latencies = [(at - sent[seq]) * 1000 for seq, at in got]
        finally:
            for process in processes:
                process.stop()
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "logs": str(logs),
    }


def main(argv: list[str] | None = None) -> None:
    """Run RUNS times and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.notify_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="signals published per second")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(args.runs):
        result = measure(args.signals, args.rate)
        print(
            f"{args.signals} signals at {args.rate:g}/s, publish → webhook receipt: "
            f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, max {result['max_ms']:.0f} ms "
            f"(logs: {result['logs']})",
            flush=True,
        )


if __name__ == "__main__":
    main()
