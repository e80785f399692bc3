"""Fan-out measurements: Redis → relay → K Socket.IO clients, and the redis-py floor without the websocket hop."""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from backend.embedded_redis import EmbeddedRedis
from bench.peers import Peer, make_peer
from bench.procs import ROOT, Child, cpu_seconds, rss_bytes
from bench.stats import Histogram

LOADGEN = ROOT / "bench" / "loadgen.mjs"
PUBLISH_LEAD_S = 1.0  # the publisher process starts and connects before its first scheduled publish
_rounds = itertools.count(1)


class LoadGen:
    """K socket.io-client connections spread over P Node processes (bench/loadgen.mjs)."""

    def __init__(
        self,
        urls: list[str],
        clients: int,
        processes: int,
        ready_event: str,
        deflate: bool = True,
        concurrency: int = 100,
        connect_timeout_s: float = 120.0,
        source_addresses: int = 0,
    ):
        """Split the clients over the processes; nothing starts until connect()."""
        self.children: list[Child] = []
        self.connect_timeout_s = connect_timeout_s
        shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        for i, share in enumerate(s for s in shares if s):
            args = [
                "node",
                str(LOADGEN),
                "--urls",
                ",".join(urls),
                "--clients",
                str(share),
                "--deflate",
                "on" if deflate else "off",
                "--ready-event",
                ready_event,
                "--concurrency",
                str(max(1, concurrency // processes)),
                "--connect-timeout-ms",
                str(int(connect_timeout_s * 1000)),
                "--source-addresses",
                str(source_addresses),
            ]
            self.children.append(Child(args, f"loadgen-{i}", json_stdout=True, stdin=True))

    def connect(self) -> dict:
        """Start the processes and wait until every client connected or failed."""
        timeout = self.connect_timeout_s + 30
        for child in self.children:
            child.start()
        ready = {"ready": 0, "failed": 0, "errors": {}, "extensions": {}, "seconds": 0.0}
        for child in self.children:
            message = child.next_message(timeout, "ready")
            ready["ready"] += message["ready"]
            ready["failed"] += message["failed"]
            ready["seconds"] = max(ready["seconds"], message["seconds"])
            for key in ("errors", "extensions"):
                for name, count in message[key].items():
                    ready[key][name] = ready[key].get(name, 0) + count
        return ready

    def start_round(self, round_id: str, count: int) -> None:
        """Reset every client's counters for ROUND of COUNT signals."""
        for child in self.children:
            child.send(f"start {round_id} {count}")
        for child in self.children:
            child.next_message(10, "started")

    def report(self, deadline_s: float) -> dict:
        """Merged report once every client has everything or DEADLINE_S (epoch s) passed."""
        for child in self.children:
            child.send(f"report {int(deadline_s * 1000)}")
        reports = [child.next_message(max(10.0, deadline_s - time.time() + 10), "report") for child in self.children]
        merged = {
            key: sum(r[key] for r in reports)
            for key in ("clients", "expected", "unique", "dup", "stray", "negative", "short_clients", "disconnects")
        }
        hist = Histogram()
        for r in reports:
            hist.merge(r["hist"])
        merged["hist"] = hist
        merged["last_ms"] = max(r["last_ms"] for r in reports)
        merged["loadgen_cpu_pct"] = max(100 * r["cpu_s"] / r["wall_s"] for r in reports if r["wall_s"] > 0)
        merged["loop_delay_p99_ms"] = max(r["loop_delay_p99_ms"] for r in reports)
        return merged

    def close(self) -> None:
        """Close the connections, then stop each process by PID."""
        for child in self.children:
            if child.alive():
                try:
                    child.send("quit")
                except OSError:
                    pass
        for child in self.children:
            child.wait(5)
            child.stop()


@contextmanager
def private_redis():
    """A private redis-server for one measurement, removed afterwards."""
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.cleanup()


def publish(redis_url: str, rate: float, count: int, round_id: str) -> dict:
    """Run bench.publish in its own process (COUNT signals at RATE/s) and return its summary."""
    at = time.time() + PUBLISH_LEAD_S
    child = Child(
        [
            sys.executable,
            "-m",
            "bench.publish",
            "--redis",
            redis_url,
            "--rate",
            str(rate),
            "--count",
            str(count),
            "--round",
            round_id,
            "--at",
            str(at),
        ],
        "publish",
        json_stdout=True,
    ).start()
    try:
        return child.next_message(PUBLISH_LEAD_S + count / rate * 3 + 30, "published")
    finally:
        child.wait(5)
        child.stop()


def measure_round(
    peer: Peer, loadgen: LoadGen, redis_url: str, rate: float, count: int, drain_s: float, profile: Path | None = None
) -> dict:
    """Publish COUNT at RATE/s and measure delivery, latency and the peer's CPU and memory."""
    round_id = f"r{next(_rounds)}"
    loadgen.start_round(round_id, count)
    profiler = None
    if profile is not None:
        profiler = Child(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(peer.pids[0]),
                "--duration",
                str(max(1, int(count / rate))),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(profile),
            ],
            "py-spy",
        ).start()
    cpu0, proxy0 = cpu_seconds(peer.pids), cpu_seconds(peer.proxy_pids)
    published = publish(redis_url, rate, count, round_id)
    result = loadgen.report(time.time() + drain_s)
    cpu, proxy_cpu = cpu_seconds(peer.pids) - cpu0, cpu_seconds(peer.proxy_pids) - proxy0
    if profiler is not None:
        profiler.wait(30)
    hist: Histogram = result.pop("hist")
    start_ms = published["start_ms"]
    span_s = (
        max(published["seconds"], (result["last_ms"] - start_ms) / 1000) if result["last_ms"] else published["seconds"]
    )
    delivered = result["unique"]
    return {
        "rate": rate,
        "count": count,
        "clients": result["clients"],
        "expected": result["expected"],
        "delivered": delivered,
        "lost": result["expected"] - delivered,
        "dup": result["dup"],
        "stray": result["stray"],
        "short_clients": result["short_clients"],
        "disconnects": result["disconnects"],
        "p50_ms": hist.percentile(50),
        "p99_ms": hist.percentile(99),
        "max_ms": hist.percentile(100),
        "deliveries_per_s": delivered / span_s if span_s > 0 else 0.0,
        "cpu_s": cpu,
        "cpu_pct": 100 * cpu / span_s if span_s > 0 else 0.0,
        "cpu_s_per_1k": cpu / (delivered / 1000) if delivered else None,
        "proxy_cpu_s": proxy_cpu if peer.proxy_pids else None,
        "rss_mb": rss_bytes(peer.pids) / 1048576,
        "publish_rate": published["rate"],
        "publish_late_ms": published["worst_late_ms"],
        "loadgen_cpu_pct": result["loadgen_cpu_pct"],
        "loop_delay_p99_ms": result["loop_delay_p99_ms"],
        "negative": result["negative"],
        "loadavg_1m": os.getloadavg()[0],  # the machine is shared: how busy it was as the round ended
    }


@contextmanager
def connected(
    peer_name: str,
    clients: int,
    loadgen_procs: int,
    deflate: bool = True,
    processes: int = 1,
    project_dir: Path = ROOT,
    settle_s: float = 1.0,
    connect_timeout_s: float = 120.0,
):
    """A private Redis, the peer, and CLIENTS connected: yields (peer, loadgen, redis_url, setup facts)."""
    with private_redis() as redis_server:
        peer = make_peer(peer_name, processes, project_dir)
        loadgen = None
        try:
            peer.start(redis_server.url)
            time.sleep(0.5)
            rss0 = rss_bytes(peer.pids)
            loadgen = LoadGen(
                peer.urls,
                clients,
                loadgen_procs,
                peer.ready_event,
                deflate,
                connect_timeout_s=connect_timeout_s,
                source_addresses=peer.source_addresses,
            )
            ready = loadgen.connect()
            time.sleep(settle_s)
            rss1 = rss_bytes(peer.pids)
            setup = {
                **ready,
                "per_process": per_process_clients(peer),
                "rss0_mb": rss0 / 1048576,
                "rss_mb": rss1 / 1048576,
                "rss_per_1k_mb": (rss1 - rss0) / 1048576 / ready["ready"] * 1000 if ready["ready"] else None,
            }
            yield peer, loadgen, redis_server.url, setup
        finally:
            if loadgen is not None:
                loadgen.close()
            peer.stop()


def per_process_clients(peer: Peer) -> list[int] | None:
    """Clients connected to each web process behind a proxy (each one's qs_clients_connected), else None."""
    if not hasattr(peer, "web_urls"):
        return None
    counts = []
    for url in peer.web_urls():
        text = requests.get(url + "/metrics", timeout=5).text
        match = re.search(r"^qs_clients_connected (\S+)$", text, re.M)
        counts.append(int(float(match.group(1))) if match else -1)
    return counts


def run_fanout(
    peer_name: str,
    clients: int,
    rate: float,
    count: int,
    loadgen_procs: int,
    deflate: bool = True,
    processes: int = 1,
    drain_s: float = 3.0,
    project_dir: Path = ROOT,
    profile: Path | None = None,
    connect_timeout_s: float = 120.0,
) -> dict:
    """One fan-out measurement from a fresh start."""
    with connected(
        peer_name, clients, loadgen_procs, deflate, processes, project_dir, connect_timeout_s=connect_timeout_s
    ) as (peer, loadgen, url, setup):
        result = measure_round(peer, loadgen, url, rate, count, drain_s, profile)
    return {
        **result,
        "connect_failed": setup["failed"],
        "connect_s": setup["seconds"],
        "extensions": setup["extensions"],
        "rss_per_1k_mb": setup["rss_per_1k_mb"],
        "rss_idle_mb": setup["rss_mb"],
        "per_process": setup["per_process"],
    }


def run_idle(peer_name: str, clients: int, window_s: float, loadgen_procs: int = 1, project_dir: Path = ROOT) -> dict:
    """CPU of the peer's process with CLIENTS connected and nothing published, over WINDOW_S."""
    with connected(peer_name, clients, loadgen_procs, project_dir=project_dir, settle_s=2.0) as (
        peer,
        _lg,
        _url,
        setup,
    ):
        cpu0, t0 = cpu_seconds(peer.pids), time.monotonic()
        time.sleep(window_s)
        cpu, wall = cpu_seconds(peer.pids) - cpu0, time.monotonic() - t0
    return {
        "clients": setup["ready"],
        "connect_failed": setup["failed"],
        "cpu_pct": 100 * cpu / wall,
        "cpu_s": cpu,
        "rss_mb": setup["rss_mb"],
        "rss_per_1k_mb": setup["rss_per_1k_mb"] if clients >= 100 else None,
        "loadavg_1m": os.getloadavg()[0],
    }


def passes(result: dict, p99_limit_ms: float) -> bool:
    """Sustained: nothing lost or duplicated within the drain window, and p99 under the limit."""
    return result["lost"] == 0 and result["dup"] == 0 and (result["p99_ms"] or 0) <= p99_limit_ms


def run_saturation(
    peer_name: str,
    clients: int,
    start_rate: float,
    step: float,
    step_s: float,
    budget_s: float,
    p99_limit_ms: float = 250.0,
    drain_s: float = 1.0,
    project_dir: Path = ROOT,
) -> dict:
    """Raise the rate by STEP until a step fails, then try the geometric middle once; within BUDGET_S."""
    steps = []
    with connected(peer_name, clients, 2, project_dir=project_dir) as (peer, loadgen, url, _setup):
        deadline = time.monotonic() + budget_s
        rate, best, failed_at = start_rate, None, None
        while time.monotonic() + step_s + drain_s + 3 < deadline:
            result = measure_round(peer, loadgen, url, rate, int(rate * step_s), drain_s)
            result["pass"] = passes(result, p99_limit_ms)
            steps.append(result)
            if not result["pass"]:
                failed_at = rate
                break
            best = result
            rate *= step
            time.sleep(0.5)
        if best is not None and failed_at is not None and time.monotonic() + step_s + drain_s + 3 < deadline:
            time.sleep(1.0)
            middle = (best["rate"] * failed_at) ** 0.5
            result = measure_round(peer, loadgen, url, middle, int(middle * step_s), drain_s)
            result["pass"] = passes(result, p99_limit_ms)
            steps.append(result)
            if result["pass"]:
                best = result
    summary = dict(best or steps[0])
    summary["steps"] = [(round(s["rate"]), s["pass"], s["p99_ms"], s["lost"]) for s in steps]
    summary["saturated"] = failed_at is not None
    summary["ok"] = best is not None
    return summary


def run_floor(rate: float, count: int, deadline_s: float = 30.0) -> dict:
    """The floor: the same publisher, a redis-py subscriber, no websocket hop."""
    with private_redis() as redis_server:
        round_id = f"r{next(_rounds)}"
        floor = Child(
            [
                sys.executable,
                "-m",
                "bench.floor",
                "--redis",
                redis_server.url,
                "--count",
                str(count),
                "--round",
                round_id,
                "--deadline",
                str(PUBLISH_LEAD_S + count / rate + deadline_s),
            ],
            "floor",
            json_stdout=True,
        ).start()
        try:
            floor.next_message(15, "ready")
            published = publish(redis_server.url, rate, count, round_id)
            report = floor.next_message(deadline_s + 5, "report")
        finally:
            floor.stop()
    hist = Histogram()
    hist.merge(report["hist"])
    return {
        "rate": rate,
        "count": count,
        "clients": 1,
        "expected": count,
        "delivered": report["unique"],
        "lost": count - report["unique"],
        "dup": report["dup"],
        "p50_ms": hist.percentile(50),
        "p99_ms": hist.percentile(99),
        "max_ms": hist.percentile(100),
        "deliveries_per_s": report["unique"] / published["seconds"],
        "publish_rate": published["rate"],
    }
