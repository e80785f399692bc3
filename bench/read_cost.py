"""`python -m bench.read_cost`: CPU per request of history reads by symbol, as a ratio to `limit=1` in the same run.

One private Redis holds 10,000 signals over 20 symbols (500 each), published by this checkout's publisher (so
the per-symbol index exists). The Procfile's web process of this checkout answers; with `--baseline COMMIT`, the
web process of that commit too (exported with `git archive` to a temporary directory and run with this
interpreter, so its requirements must be installed here), and the requests go to each in turn.
A request's CPU is the web process's (user + system, /proc) plus Redis's (INFO cpu),
over REQUESTS sequential requests, divided by REQUESTS; every request
takes the next `since` of a cycle of 0…299: more keys than /api/signals' LRU body cache holds (256), so it never
answers one, and at most 3 % of the history is left out. Each round measures every case
on both; the figures are the median and spread (min–max) of the rounds, and the ratios baseline / this checkout.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from backend.embedded_redis import EmbeddedRedis
from backend.publisher import Publisher
from backend.redis_client import make_redis
from bench.api_signals import start_web
from bench.peers import procfile_web
from bench.procs import ROOT, stop_all

SYMBOLS = [f"S{i:02d}USDT" for i in range(20)]
HISTORY = 10_000
CASES = {  # name: (path, expected number of items answered)
    "limit=1 (floor)": ("/api/signals?limit=1", 1),
    "hit: symbol, limit=100": (f"/api/signals?symbol={SYMBOLS[0]}&limit=100", 100),
    "miss: symbol, limit=100": ("/api/signals?symbol=NOPEUSDT&limit=100", 0),
    "miss: outcomes of a symbol": ("/api/outcomes?symbol=NOPEUSDT&limit=1000", 0),
    "limit=1000, no symbol": ("/api/signals?limit=1000", 1000),
}
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
_since = itertools.cycle(range(300))  # longer than the body cache (256 entries): every request misses it


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process PID so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def redis_cpu(client) -> float:
    """User + system CPU seconds of the Redis server so far."""
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def cpu_per_request(session, url: str, pid: int, client, path: str, expected: int, count: int) -> float:
    """CPU milliseconds (web + Redis) per request of PATH, over COUNT requests, each checked for EXPECTED items."""
    web_before, redis_before = process_cpu(pid), redis_cpu(client)
    for _ in range(count):
        answer = session.get(f"{url}{path}&since={next(_since)}", timeout=30)
        answer.raise_for_status()
        body = answer.json()
        items = body["signals"] if "signals" in body else body["outcomes"]
        if len(items) != expected:
            raise RuntimeError(f"{path}: {len(items)} items answered, {expected} expected")
    spent = process_cpu(pid) - web_before + redis_cpu(client) - redis_before
    return spent / count * 1000


def export(ref: str) -> Path:
    """A copy of the repository at REF (git archive) in a temporary directory, with this checkout's vendored JS."""
    target = Path(tempfile.mkdtemp(prefix="qs-baseline-"))
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    vendor = ROOT / "backend" / "web" / "static" / "vendor"
    if vendor.is_dir():
        subprocess.run(["cp", "-r", str(vendor), str(target / "backend" / "web" / "static")], check=True)
    return target


def fill(client) -> None:
    """HISTORY signals over SYMBOLS, round robin, through this checkout's publisher."""
    publisher = Publisher(client, "quantum_signals", HISTORY, 65536)
    for i in range(HISTORY):
        publisher.publish_signal(
            {
                "type": "BUY" if i % 2 else "SELL",
                "price": 60000 + i,
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "timeframe": "1m",
                "strategy": "sma_cross:fast=9,slow=21",
                "reason": "benchmark",
                "indicators": {"sma_fast": 1.0, "sma_slow": 2.0},
            }
        )


def spread(values: list[float]) -> str:
    """Median (min–max) of VALUES."""
    return f"{statistics.median(values):8.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    """Fill a private Redis, start both web processes, measure the rounds, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.read_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a commit to compare with, whose requirements this venv has")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100, help="requests per case per round")
    args = parser.parse_args(argv)
    baseline_dir = export(args.baseline) if args.baseline else None
    figures: dict[tuple[str, str], list[float]] = {}
    with EmbeddedRedis() as redis_server:
        client = make_redis(redis_server.url)
        fill(client)
        try:
            webs = {"this": start_web("web-this", procfile_web(ROOT, sys.executable), redis_server.url)}
            if baseline_dir is not None:
                command = procfile_web(baseline_dir, sys.executable)
                webs["baseline"] = start_web("web-baseline", command, redis_server.url, PYTHONPATH=str(baseline_dir))
            sessions = {name: requests.Session() for name in webs}
            for name, (child, url) in webs.items():  # warm-up: connections, imports, first reads
                for path, expected in CASES.values():
                    cpu_per_request(sessions[name], url, child.pid, client, path, expected, 3)
            for _ in range(args.rounds):
                for case, (path, expected) in CASES.items():
                    for name, (child, url) in webs.items():
                        spent = cpu_per_request(sessions[name], url, child.pid, client, path, expected, args.requests)
                        figures.setdefault((case, name), []).append(spent)
        finally:
            stop_all()
            if baseline_dir is not None:
                subprocess.run(["rm", "-rf", str(baseline_dir)], check=False)
    print(
        f"CPU ms per request (web process + Redis), {HISTORY:,} signals over {len(SYMBOLS)} symbols; "
        f"{args.requests} requests × {args.rounds} rounds; median (min–max); baseline = {args.baseline or 'none'}"
    )
    floor = statistics.median(figures[(next(iter(CASES)), "this")])
    if baseline_dir is None:
        print("| case | this checkout | this / limit=1 |\n| --- | --- | --- |")
    else:
        print("| case | baseline | this checkout | baseline / this | this / limit=1 |\n| --- | --- | --- | --- | --- |")
    for case in CASES:
        after = figures[(case, "this")]
        vs_floor = f"{statistics.median(after) / max(floor, 1e-9):.1f}×"
        if baseline_dir is None:
            print(f"| {case} | {spread(after)} | {vs_floor} |")
            continue
        before = figures[(case, "baseline")]
        ratio = statistics.median(before) / max(statistics.median(after), 1e-9)
        print(f"| {case} | {spread(before)} | {spread(after)} | {ratio:.1f}× | {vs_floor} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
