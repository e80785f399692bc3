"""Ratios to Node across repeated runs: `python -m bench.spread RUN.json [RUN.json …]` (files from `--json`).

Each run of a peer is divided by Node's run of the same invocation and the same repeat (the runs of a
scenario interleave: node, project, node, project…), so every ratio is a same-run ratio; the table gives
the median ratio and its range over all runs, with the absolute figures and the machine's load beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = (
    ("cpu_s_per_1k", "CPU s / 1k deliv.", 4),
    ("p50_ms", "p50 ms", 1),
    ("p99_ms", "p99 ms", 1),
    ("rss_idle_mb", "RSS MB", 0),
    ("connect_s", "accept s", 1),
)


def runs_of(findings: dict, scenario: str, peer: str) -> list[dict]:
    """Every run of PEER in SCENARIO of one invocation: the interleaved repeats, or its one result."""
    if f"{scenario}/{peer}/runs" in findings:
        return findings[f"{scenario}/{peer}/runs"]
    return [findings[f"{scenario}/{peer}"]] if f"{scenario}/{peer}" in findings else []


def pairs(invocations: list[dict], scenario: str, peer: str) -> list[tuple[dict, dict]]:
    """(peer's run, Node's run of the same invocation and repeat) over every invocation."""
    out = []
    for findings in invocations:
        out += zip(runs_of(findings, scenario, peer), runs_of(findings, scenario, "node"))
    return out


def _spread(values: list[float], decimals: int, unit: str = "") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{decimals}f}{unit}"
    return f"{median:.{decimals}f}{unit} ({min(values):.{decimals}f}–{max(values):.{decimals}f})"


def _ratio(mine: dict, node: dict, key: str) -> float | None:
    if mine.get(key) is None or not node.get(key):
        return None
    return mine[key] / node[key]


def table(invocations: list[dict]) -> str:
    """The markdown table of every scenario/peer (other than node) that has Node runs to pair with."""
    keys = sorted(
        {k.rsplit("/", 1)[0] for f in invocations for k in f if k.endswith("/runs")}
        | {k for f in invocations for k in f if k.startswith(("saturation/", "idle-")) and k.count("/") == 1}
    )
    lines = [
        "| scenario | peer | runs | "
        + " | ".join(f"{h} ratio to Node" for _, h, _ in METRICS)
        + " | "
        + " | ".join(h for _, h, _ in METRICS)
        + " | Node's "
        + " | Node's ".join(h for _, h, _ in METRICS)
        + " | deliveries/s | lost | connected | load avg |",
        "|" + " --- |" * (4 + 3 * len(METRICS) + 4),
    ]
    for key in keys:
        scenario, peer = key.split("/", 1)
        if peer in ("node", "floor") or "/" in peer:
            continue
        matched = pairs(invocations, scenario, peer)
        if scenario.startswith("idle-"):
            runs = [run for f in invocations for run in runs_of(f, scenario, peer)]
            node = [run for f in invocations for run in runs_of(f, scenario, "node")]
            lines.append(
                f"| {scenario} | {peer} | {len(runs)} | idle CPU {_spread([r['cpu_pct'] for r in runs], 2, ' %')}"
                f" (Node {_spread([r['cpu_pct'] for r in node], 2, ' %')}) |"
                + " – |"
                * (3 * len(METRICS) - 1)
                + f" – | – | {_spread([r['clients'] for r in runs], 0)} |"
                f" {_spread([r.get('loadavg_1m') for r in runs], 1)} |"
            )
            continue
        if not matched:
            continue
        mine = [m for m, _ in matched]
        cells = [_spread([_ratio(m, n, key) for m, n in matched], 2, "×") for key, _, _ in METRICS]
        cells += [_spread([m.get(key) for m in mine], d) for key, _, d in METRICS]
        cells += [_spread([n.get(key) for _, n in matched], d) for key, _, d in METRICS]
        rates = (
            _spread([m.get("deliveries_per_s") for m in mine], 0)
            + " (Node "
            + _spread([n.get("deliveries_per_s") for _, n in matched], 0)
            + "); "
            + _spread([_ratio(m, n, "deliveries_per_s") for m, n in matched], 2, "×")
        )
        lost = ", ".join(str(m["lost"]) for m in mine)
        connected = ", ".join(str(m["clients"]) for m in mine)
        load = _spread([m.get("loadavg_1m") for m in mine], 1)
        lines.append(
            f"| {scenario} | {peer} | {len(matched)} | "
            + " | ".join(cells)
            + f" | {rates} | {lost} | {connected} | {load} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table of the given runs."""
    parser = argparse.ArgumentParser(prog="python -m bench.spread", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="JSON files written by `python -m bench --json`")
    args = parser.parse_args(argv)
    print(table([json.loads(path.read_text())["findings"] for path in args.runs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
