"""The scenarios of `python -m bench`: each runs its peers and baselines and returns table rows."""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import fanout
from bench.procs import ROOT, log_dir
from bench.report import Row
from bench.scan import TIMEFRAMES, import_seconds, run_compute, run_scan_repeated

PEERS = ("node", "project", "seed")  # node first: it is the baseline of the fan-out rows


@dataclass
class Config:
    """How a run was asked for."""

    quick: bool = False
    project_dir: Path = ROOT
    peers: tuple[str, ...] = PEERS
    findings: dict = field(default_factory=dict)  # profile frames, saturation steps, connect facts…


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _fanout_values(result: dict, floor: dict | None = None) -> dict:
    values = {k: result.get(k) for k in ("p50_ms", "p99_ms", "cpu_pct", "cpu_s_per_1k", "rss_per_1k_mb")}
    values["throughput"] = result.get("deliveries_per_s")
    values["lost_dup"] = f"{result['lost']} / {result['dup']}"
    values["rss_mb"] = result.get("rss_idle_mb")  # with every client connected, before the round
    values["connect_s"] = result.get("connect_s")  # to accept every client (the load generator's clock)
    if floor and result.get("p50_ms") is not None and floor.get("p50_ms") is not None:
        values["p50_over_floor_ms"] = result["p50_ms"] - floor["p50_ms"]
    return values


def _fanout_note(result: dict) -> str:
    parts = []
    if result.get("connect_failed"):
        parts.append(
            f"{result['connect_failed']} of {result['clients'] + result['connect_failed']} clients failed to connect"
        )
    if result.get("per_process"):
        parts.append("clients per web process " + " / ".join(str(n) for n in result["per_process"]))
    if result.get("proxy_cpu_s") is not None and result.get("cpu_s"):
        parts.append(f"nginx {result['proxy_cpu_s']:.1f} of {result['cpu_s']:.1f} CPU s")
    if result.get("extensions"):
        parts.append("ws ext: " + ", ".join(f"{k} ×{v}" for k, v in result["extensions"].items()))
    if result.get("short_clients"):
        parts.append(f"{result['short_clients']} clients short")
    if result.get("publish_rate") and result.get("rate") and result["publish_rate"] < 0.95 * result["rate"]:
        parts.append(f"publisher reached only {result['publish_rate']:.0f}/s")
    if result.get("loadgen_cpu_pct") is not None:
        parts.append(f"loadgen ≤{result['loadgen_cpu_pct']:.0f}% CPU/proc")
    if result.get("max_ms") is not None:
        parts.append(f"max {result['max_ms']:.0f} ms")
    return "; ".join(parts)


def _latency_scenario(
    name: str,
    cfg: Config,
    clients: int,
    rate: float,
    seconds: float,
    loadgen_procs: int,
    deflate: bool = True,
    peers: tuple[str, ...] | None = None,
    baseline: str | None = None,
    with_floor: bool = True,
    repeats: int = 1,
    processes: dict[str, int] | None = None,
    connect_timeout_s: float | None = None,
) -> list[Row]:
    """Floor, then each peer; with REPEATS > 1 the runs interleave and the median run by p99 is shown.

    PROCESSES: web processes per peer name (default 1); CONNECT_TIMEOUT_S: for all clients to connect.
    """
    count = max(1, int(rate * seconds))
    rows, floor = [], None
    if with_floor:
        log(f"{name}: floor (redis-py subscriber) at {rate:g}/s × {count}")
        floor = fanout.run_floor(rate, count)
        rows.append(Row(name, "floor", _fanout_values(floor), f"{name}/node", "redis-py SUBSCRIBE, no websocket"))
        cfg.findings[f"{name}/floor"] = floor
    peers = peers or cfg.peers
    runs: dict[str, list[dict]] = {peer: [] for peer in peers}
    for attempt in range(repeats):
        for peer in peers:
            if attempt and peer == "seed":
                continue  # an order of magnitude off: one run tells
            log(
                f"{name}: {peer} K={clients} × {rate:g}/s × {count} signals, deflate offered={deflate}"
                + (f", run {attempt + 1}/{repeats}" if repeats > 1 else "")
            )
            runs[peer].append(
                fanout.run_fanout(
                    peer,
                    clients,
                    rate,
                    count,
                    loadgen_procs,
                    deflate=deflate,
                    processes=(processes or {}).get(peer, 1),
                    project_dir=cfg.project_dir,
                    connect_timeout_s=connect_timeout_s or (60 if clients > 2000 else 120),
                )
            )
    for peer in peers:
        ordered = sorted(runs[peer], key=lambda r: r["p99_ms"] if r["p99_ms"] is not None else float("inf"))
        result = ordered[len(ordered) // 2]
        cfg.findings[f"{name}/{peer}"] = result
        cfg.findings[f"{name}/{peer}/runs"] = runs[peer]  # every run's figures, for the spread (--json)
        note = _fanout_note(result)
        if len(ordered) > 1:
            note = (
                f"median of {len(ordered)} runs by p99 (p99 "
                + " / ".join(f"{r['p99_ms']:.0f}" for r in ordered)
                + ", p50 "
                + " / ".join(f"{r['p50_ms']:.1f}" for r in ordered)
                + " ms); "
                + note
            )
        rows.append(Row(name, peer, _fanout_values(result, floor), baseline or f"{name}/node", note))
    return rows


def idle(clients: int) -> Callable[[Config], list[Row]]:
    """CPU of the server process with CLIENTS connected and no traffic."""

    def run(cfg: Config) -> list[Row]:
        """CPU % of the server process over 10 s with the clients connected and nothing published."""
        window = 3.0 if cfg.quick else 10.0
        rows = []
        for peer in cfg.peers:
            log(f"idle-{clients}: {peer}, {window:g} s window")
            result = fanout.run_idle(
                peer, clients, window, loadgen_procs=2 if clients > 500 else 1, project_dir=cfg.project_dir
            )
            cfg.findings[f"idle-{clients}/{peer}"] = result
            note = f"{result['cpu_s']:.2f} CPU s in {window:g} s; RSS {result['rss_mb']:.0f} MB"
            if result["connect_failed"]:
                note += f"; {result['connect_failed']} failed to connect"
            rows.append(
                Row(
                    f"idle-{clients}",
                    peer,
                    {"cpu_pct": result["cpu_pct"], "rss_per_1k_mb": result["rss_per_1k_mb"]},
                    f"idle-{clients}/node",
                    note,
                )
            )
        return rows

    return run


def k100x200(cfg: Config) -> list[Row]:
    """K=100 clients × 200 signals/s."""
    return _latency_scenario("k100x200", cfg, 100, 200, 3 if cfg.quick else 10, 2, repeats=1 if cfg.quick else 3)


def k1000x20(cfg: Config) -> list[Row]:
    """K=1,000 clients × 20 signals/s, clients offering permessage-deflate like browsers."""
    return _latency_scenario("k1000x20", cfg, 1000, 20, 5 if cfg.quick else 15, 3, repeats=1 if cfg.quick else 3)


def k1000x20_plain(cfg: Config) -> list[Row]:
    """The same load with clients that do not offer permessage-deflate: the server's compression cost."""
    peers = tuple(p for p in cfg.peers if p != "node") or cfg.peers  # Node's server declines deflate anyway
    return _latency_scenario(
        "k1000x20-nodeflate",
        cfg,
        1000,
        20,
        15,
        3,
        deflate=False,
        peers=peers,
        baseline="k1000x20/node",
        with_floor=False,
    )


def k5000x2(cfg: Config) -> list[Row]:
    """K=5,000 clients × 2 signals/s: connection capacity and RSS per 1,000 clients."""
    return _latency_scenario("k5000x2", cfg, 5000, 2, 15, 4)


def _relay_peers(cfg: Config) -> tuple[str, ...]:
    """The peers of a heavy scenario: node and the project variants asked for, never the seed (minutes per run)."""
    return tuple(p for p in cfg.peers if p != "seed") or ("node", "project")


def k10000x1(cfg: Config) -> list[Row]:
    """K=10,000 clients × 1 signal/s on one process (5 load-generator processes): all connected, nothing lost."""
    return _latency_scenario(
        "k10000x1",
        cfg,
        10000,
        1,
        15,
        5,
        peers=_relay_peers(cfg),
        with_floor=False,
        repeats=1 if cfg.quick else 3,
        connect_timeout_s=240,
    )


def nginx2(cfg: Config) -> list[Row]:
    """K=1,000 × 20/s on 2 project web processes behind nginx (deploy/nginx.conf) vs 1 process and Node."""
    peers = _relay_peers(cfg) + ("project-nginx",)
    rows = _latency_scenario(
        "nginx2",
        cfg,
        1000,
        20,
        5 if cfg.quick else 15,
        3,
        peers=peers,
        with_floor=False,
        repeats=1 if cfg.quick else 3,
        processes={"project-nginx": 2},
    )
    for row in rows:
        if row.peer == "project-nginx" and "project" in peers:
            row.baseline = "nginx2/project"  # the question: 2 processes behind nginx against 1 at the same load
    return rows


def saturation(cfg: Config) -> list[Row]:
    """Highest sustained rate at K=100: stepped ×1.5 from 100/s, then one step between pass and fail."""
    rows = []
    for peer in cfg.peers:
        log(f"saturation: {peer} K=100, steps ×1.5 from 100/s, 3 s each, 90 s budget")
        result = fanout.run_saturation(
            peer, 100, 100, 1.5, 3.0, 90.0, p99_limit_ms=500, drain_s=1.0, project_dir=cfg.project_dir
        )
        cfg.findings[f"saturation/{peer}"] = result
        steps = ", ".join(f"{rate}/s {'ok' if ok else 'FAIL'}" for rate, ok, _p99, _lost in result["steps"])
        note = (
            (f"max sustained {result['rate']:.0f} signals/s" if result["ok"] else "no step sustained")
            + ("" if result["saturated"] else " (budget ended before a failing step)")
            + f"; steps: {steps}"
        )
        rows.append(Row("saturation", peer, _fanout_values(result), "saturation/node", note))
    return rows


def scale(cfg: Config) -> list[Row]:
    """1, 2 and 4 project web processes on one Redis, K=1,000 × 20/s spread over them."""
    rows = []
    for processes in (1, 2, 4):
        log(f"scale: project ×{processes}, K=1000 × 20/s")
        result = fanout.run_fanout("project", 1000, 20, 200, 3, processes=processes, project_dir=cfg.project_dir)
        cfg.findings[f"scale/project×{processes}"] = result
        rows.append(
            Row("scale", f"project ×{processes}", _fanout_values(result), "scale/project ×1", _fanout_note(result))
        )
    return rows


def profile(cfg: Config) -> list[Row]:
    """py-spy on the project's web process under K=1,000 × 20/s (and on project-nofast when it is a peer)."""
    rows = []
    for peer in [p for p in ("project", "project-nofast") if p in cfg.peers] or ["project"]:
        path = log_dir() / ("profile-k1000x20.txt" if peer == "project" else f"profile-k1000x20-{peer}.txt")
        log(f"profile: {peer} K=1000 × 20/s under py-spy ({path})")
        result = fanout.run_fanout(peer, 1000, 20, 300, 3, project_dir=cfg.project_dir, profile=path)
        cfg.findings["profile" if peer == "project" else f"profile/{peer}"] = top_frames(path)
        note = "py-spy --nonblocking at 200 Hz attached; " + _fanout_note(result)
        rows.append(Row("profile", f"{peer}+py-spy", _fanout_values(result), f"k1000x20/{peer}", note))
    return rows


def top_frames(path: Path, limit: int = 15) -> dict:
    """Self and inclusive sample shares of the frames in a py-spy raw (collapsed) file."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    if not path.exists():
        return {"total": 0, "self": [], "inclusive": []}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    share = lambda counter: [(frame, 100 * c / total) for frame, c in counter.most_common(limit)]  # noqa: E731
    return {"total": total, "self": share(own), "inclusive": share(inclusive)}


def scan(cfg: Config) -> list[Row]:
    """500 symbols × 1m,1h × 4 strategies on one worker at 50 ms latency: raw GETs and ccxt's binance, 3 runs."""
    count = 200 if cfg.quick else 500
    log(f"scan: raw GET floor, ccxt:binance; {count} symbols × {len(TIMEFRAMES)} timeframes, 3 runs each")
    summary = run_scan_repeated(count, runs=1 if cfg.quick else 3)
    names = {"raw": "raw GET floor", "ccxt": "ccxt:binance"}
    rows = []
    for kind, result in summary.items():
        cfg.findings[f"scan/{names[kind]}"] = {k: v for k, v in result.items() if k != "runs"}
        (cold_lo, cold_hi), (warm_lo, warm_hi) = result["cold_spread_s"], result["warm_spread_s"]
        note = (
            f"symbols/s warm; {count} × {len(TIMEFRAMES)} series, median of {len(result['runs'])}: "
            f"{result['cold_s']:.2f} s cold ({cold_lo:.2f}–{cold_hi:.2f}; {result['cold_ratio']:.2f}× floor), "
            f"{result['warm_s']:.2f} s warm ({warm_lo:.2f}–{warm_hi:.2f}; {result['warm_ratio']:.2f}× floor); "
            f"RSS {result['rss_mb']:.0f} MB"
        )
        if kind == "ccxt":
            note += f"; markets loaded in {result['markets_s']:.2f} s at start"
            note += f"; `import ccxt` {import_seconds('ccxt'):.2f} s"
        rows.append(
            Row("scan-50ms", names[kind], {"throughput": result["symbols_per_s"]}, "scan-50ms/raw GET floor", note)
        )
    return rows


def compute(cfg: Config) -> list[Row]:
    """1,000 symbols × 500 bars through the four strategies, against TA-Lib computing the same indicators."""
    count = 200 if cfg.quick else 1000
    log(f"compute: {count} symbols × 500 bars")
    rows = []
    for name, result in run_compute(count, 500):
        cfg.findings[f"compute/{name}"] = result
        rows.append(
            Row(
                "compute",
                name,
                {"throughput": result["symbols_per_s"]},
                "compute/talib",
                f"symbols/s; {count} × 500 bars in {result['seconds']:.3f} s "
                f"({result['ms_per_symbol']:.3f} ms/symbol, 4 strategies)",
            )
        )
    return rows


# name → (runner, in --quick)
SCENARIOS: dict[str, tuple[Callable[[Config], list[Row]], bool]] = {
    "idle-1": (idle(1), True),
    "idle-1000": (idle(1000), False),
    "k100x200": (k100x200, True),
    "k1000x20": (k1000x20, True),
    "k1000x20-nodeflate": (k1000x20_plain, False),
    "k5000x2": (k5000x2, False),
    "k10000x1": (k10000x1, False),
    "nginx2": (nginx2, False),
    "saturation": (saturation, False),
    "scale": (scale, False),
    "profile": (profile, False),
    "scan": (scan, True),
    "compute": (compute, True),
}
