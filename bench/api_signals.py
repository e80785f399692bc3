"""`python -m bench.api_signals`: requests/s of GET /api/signals?limit=1000 with and without the response cache.

Two real web processes on one private Redis holding 1,000 signals: `python asgi.py` as deployed (cache on)
and the same app served the same way without the cache (app.state.signals_cache = None, as only this benchmark
sets it). Each round times REQUESTS sequential requests on one keep-alive connection to each, alternating; the
figures are the median and the spread (min–max) of the rounds' requests/s, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import requests

from backend.embedded_redis import EmbeddedRedis
from backend.publisher import Publisher
from backend.redis_client import make_redis
from bench.procs import Child, stop_all
from harness.polling import wait_until
from harness.ports import free_port

# asgi.py with the cache switched off: the same settings, the same server configuration.
SERVE_UNCACHED = """
import uvicorn
from backend.logging_setup import configure_logging
from backend.settings import load_settings
from backend.web import create_app
from backend.web.server import uvicorn_config
configure_logging()
settings = load_settings()
app = create_app(settings)
app.state.signals_cache = None
uvicorn.Server(uvicorn_config(app, settings)).run()
"""


def start_web(name: str, args: list[str], redis_url: str, **extra: str) -> tuple[Child, str]:
    """Start a web process (EXTRA added to its environment); return it and its base URL once /readyz answers 200."""
    port = free_port()
    env = {"REDIS_URL": redis_url, "PORT": str(port), "HTTP_RATE_LIMIT": "1000000/second", "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    child = Child(args, name, env=env).start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(url + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(lambda: ready() or not child.alive(), 30, 0.05, f"{name} ready")
    if not child.alive():
        raise RuntimeError(f"{name} exited; log {child.log_path}:\n{child.log()[-2000:]}")
    return child, url


def rate(session: requests.Session, url: str, count: int) -> float:
    """Requests per second over COUNT sequential GETs of URL (each checked for 1,000 signals)."""
    start = time.perf_counter()
    for _ in range(count):
        answer = session.get(url, timeout=10)
        answer.raise_for_status()
    elapsed = time.perf_counter() - start
    assert len(answer.json()["signals"]) == 1000
    return count / elapsed


def summary(rates: list[float]) -> str:
    """Median and spread of RATES."""
    return f"median {statistics.median(rates):7.1f} req/s  (min {min(rates):.1f}, max {max(rates):.1f})"


def main(argv: list[str] | None = None) -> int:
    """Fill a private Redis, start both web processes, time the rounds, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_signals", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    path = "/api/signals?limit=1000"
    with EmbeddedRedis() as redis_server:
        client = make_redis(redis_server.url)
        publisher = Publisher(client, "quantum_signals", 10000, 65536)
        for i in range(1000):
            publisher.publish_signal(
                {
                    "type": "BUY" if i % 2 else "SELL",
                    "price": 60000 + i,
                    "symbol": "BTCUSDT",
                    "timeframe": "1m",
                    "strategy": "sma_cross:fast=9,slow=21",
                    "reason": "benchmark",
                    "indicators": {"sma_fast": 1.0, "sma_slow": 2.0},
                }
            )
        try:
            targets = {
                "cache": start_web("web-cache", [sys.executable, "asgi.py"], redis_server.url),
                "no cache": start_web("web-nocache", [sys.executable, "-c", SERVE_UNCACHED], redis_server.url),
            }
            rates: dict[str, list[float]] = {name: [] for name in targets}
            sessions = {name: requests.Session() for name in targets}
            for name, (_child, url) in targets.items():  # warm-up: connections, first cache fill
                rate(sessions[name], url + path, 10)
            for _ in range(args.rounds):
                for name, (_child, url) in targets.items():
                    rates[name].append(rate(sessions[name], url + path, args.requests))
        finally:
            stop_all()
    print(f"GET {path}, 1,000 signals in history, {args.requests} sequential requests × {args.rounds} rounds")
    for name, figures in rates.items():
        print(f"  {name:9s} {summary(figures)}")
    ratio = statistics.median(rates["cache"]) / statistics.median(rates["no cache"])
    print(f"  cache / no cache: {ratio:.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
