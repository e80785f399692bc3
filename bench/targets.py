"""The team's targets, judged from the rows of a run: met, not met, or not measured."""

from __future__ import annotations

from bench.report import Row


def _value(rows: dict[str, Row], key: str, name: str):
    row = rows.get(key)
    return None if row is None else row.values.get(name)


def _fmt(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:.3g}{unit}"


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

    for scenario, load in (("k1000x20", "K=1,000×20/s"), ("k5000x2", "K=5,000×2/s")):
        for name in ("p50_ms", "p99_ms"):
            mine, node = _value(rows, f"{scenario}/project", name), _value(rows, f"{scenario}/node", name)
            if mine is not None and node:
                out.append(
                    (
                        f"{name[:3]} at {load} within 1.5× Node's",
                        verdict(mine <= 1.5 * node),
                        f"project {_fmt(mine, ' ms')} vs node {_fmt(node, ' ms')} ({mine / node:.2f}×)",
                    )
                )

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
        out.append(
            (
                "saturation deliveries/s ≥ Node's",
                verdict((mine or 0) >= (theirs or 0)),
                f"project {_fmt(mine)}/s vs node {_fmt(theirs)}/s{note}",
            )
        )

    for scenario in ("k100x200", "k1000x20", "k5000x2"):
        cpu, node = (
            _value(rows, f"{scenario}/project", "cpu_s_per_1k"),
            _value(rows, f"{scenario}/node", "cpu_s_per_1k"),
        )
        if cpu is not None and node:
            out.append(
                (
                    f"CPU per 1,000 deliveries ≤ Node's ({scenario})",
                    verdict(cpu <= node),
                    f"project {_fmt(cpu, ' s')} vs node {_fmt(node, ' s')} ({cpu / node:.2f}×)",
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
