"""The team's targets, judged from the rows of a run: met, not met, or not measured."""

from __future__ import annotations

from bench.report import Row


def _value(rows: dict[str, Row], key: str, name: str):
    row = rows.get(key)
    return None if row is None else row.values.get(name)


def _fmt(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:.3g}{unit}"


def _ratio_target(rows: dict[str, Row], scenario: str, name: str, target: str, limit: float) -> list[tuple]:
    """[(TARGET, verdict, figures)]: the project's NAME in SCENARIO at most LIMIT × Node's; [] when unmeasured."""
    mine, node = _value(rows, f"{scenario}/project", name), _value(rows, f"{scenario}/node", name)
    if mine is None or not node:
        return []
    ok = "met" if mine <= limit * node else "NOT met"
    return [(target, ok, f"project {_fmt(mine)} vs node {_fmt(node)} ({mine / node:.2f}×)")]


def judge(rows_list: list[Row], findings: dict) -> list[tuple[str, str, str]]:
    """(target, verdict, figures) for each target the run has data for."""
    rows = {row.key: row for row in rows_list}
    out = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "NOT met")

    for scenario in ("idle-1", "idle-1000"):
        cpu = _value(rows, f"{scenario}/project", "cpu_pct")
        node = _value(rows, f"{scenario}/node", "cpu_pct")
        if cpu is not None:
            out.append(
                (
                    f"idle web process < 1% CPU ({scenario})",
                    verdict(cpu < 1.0),
                    f"project {_fmt(cpu, '%')}, node {_fmt(node, '%')}",
                )
            )

    # Issue 18's targets for the web tier: ratios to Node's socket.io measured in the same run.
    loads = (("k1000x20", "K=1,000×20/s"), ("k5000x2", "K=5,000×2/s"))
    for scenario, load in loads:
        out += _ratio_target(rows, scenario, "cpu_s_per_1k", f"CPU per 1,000 deliveries at {load} ≤ 0.9× Node's", 0.9)
        for name in ("p50_ms", "p99_ms"):
            out += _ratio_target(rows, scenario, name, f"{name[:3]} at {load} ≤ 1.2× Node's", 1.2)
    out += _ratio_target(rows, "k10000x1", "rss_mb", "RSS with 10,000 clients ≤ 1.5× Node's", 1.5)
    out += _ratio_target(rows, "k10000x1", "connect_s", "time to accept 10,000 clients ≤ 1.5× Node's", 1.5)

    for scenario in ("k100x200", "k1000x20", "k5000x2"):
        over = _value(rows, f"{scenario}/project", "p50_over_floor_ms")
        if over is not None:
            out.append(
                (
                    f"p50 within 2 ms of the floor ({scenario})",
                    verdict(over <= 2.0),
                    f"project p50 {_fmt(_value(rows, f'{scenario}/project', 'p50_ms'), ' ms')}, floor "
                    f"{_fmt(_value(rows, f'{scenario}/floor', 'p50_ms'), ' ms')}: +{over:.2f} ms",
                )
            )

    sat, node_sat = rows.get("saturation/project"), rows.get("saturation/node")
    if sat and node_sat:
        mine = sat.values.get("throughput") if findings.get("saturation/project", {}).get("ok") else 0.0
        theirs = node_sat.values.get("throughput") if findings.get("saturation/node", {}).get("ok") else 0.0
        note = (
            "; Node never saturated within its budget (a lower bound)"
            if not findings.get("saturation/node", {}).get("saturated")
            else ""
        )
        ratio = f" ({mine / theirs:.2f}×)" if mine and theirs else ""
        out.append(
            (
                "saturation deliveries/s at K=100 ≥ 0.9× Node's",
                verdict((mine or 0) >= 0.9 * (theirs or 0)),
                f"project {_fmt(mine)}/s vs node {_fmt(theirs)}/s{ratio}{note}",
            )
        )

    for scenario, clients in (("k5000x2", 5000), ("k10000x1", 10000)):
        runs = findings.get(f"{scenario}/project/runs")  # every run must pass, not only the median one shown
        if runs:
            ok = all(r["connect_failed"] == 0 and r["lost"] == 0 and r["clients"] >= clients for r in runs)
            figures = [f"{r['clients']} connected, {r['connect_failed']} failed, {r['lost']} lost" for r in runs]
            out.append((f"{clients:,} websocket clients on one web process, no loss", verdict(ok), "; ".join(figures)))

    for name in ("ccxt:binance",):
        scan = findings.get(f"scan/{name}")
        if not scan:
            continue
        target = f"scan 500 symbols × 2 timeframes × 4 strategies < 5 s at 50 ms, one worker ({name})"
        figures = (
            f"{scan['cold_s']:.2f} s cold ({scan['cold_ratio']:.2f}× floor), "
            f"{scan['warm_s']:.2f} s warm ({scan['warm_ratio']:.2f}× floor), medians"
        )
        if scan["symbols"] >= 500:
            out.append((target, verdict(scan["cold_s"] < 5.0), figures))
        else:
            out.append((target, "not measured", f"--quick scans {scan['symbols']}: {figures}"))
    return out
