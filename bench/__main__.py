"""`python -m bench`: run the scenarios, print one table with ratios to same-run baselines, write the docs.

python -m bench                      # everything (~20 min), writes docs/benchmarks.md
python -m bench --quick              # a ~2-minute subset for smoke-testing
python -m bench --web                # the web tier's rows against Node (issue 18's targets), ~15 min
python -m bench --only k1000x20      # one scenario (repeatable)
python -m bench --only k1000x20 --project-dir /tmp/patched   # the same against another checkout
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import traceback
from pathlib import Path

from bench import chart_cost, intake
from bench.procs import ROOT, log_dir, stop_all
from bench.report import Row, machine, table, write_docs
from bench.scenarios import PEERS, SCENARIOS, Config, log
from bench.targets import judge

DOCS = ROOT / "docs" / "benchmarks.md"
SCENARIOS["intake"] = (intake.scenario, False)  # POST /api/signals rate under the relay's lag, and notify latency
SCENARIOS["chart-cost"] = (chart_cost.scenario, False)  # the scan with and without the chart keeper
# Issue 18's targets: CPU per delivery and p50/p99 at two loads, RSS and accept time at 10,000, saturation, idle.
WEB_ROWS = ("idle-1", "idle-1000", "k1000x20", "k5000x2", "k10000x1", "saturation")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~2-minute subset with shorter windows")
    parser.add_argument(
        "--web",
        action="store_true",
        help="the web tier's rows against Node: " + ", ".join(WEB_ROWS) + " (peers node,project unless --peers)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable): " + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated subset of node,project,seed, or project-nofast (FAST_BROADCAST=0); "
        "nginx2 adds project-nginx (2 web processes behind nginx) itself",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=ROOT,
        help="run the web process (its Procfile's web line) from this checkout instead",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help=f"write the results here (default: {DOCS.relative_to(ROOT)} on a full run only)",
    )
    parser.add_argument("--no-docs", action="store_true", help="never write the docs")
    parser.add_argument("--json", type=Path, default=None, help="also dump every raw figure as JSON here")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def render(rows: list[Row], cfg: Config, command: str, started: float, host: dict, loadavg_end) -> str:
    """The markdown block: machine, command, table, targets, profile."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(started))} with `{command}` "
        f"in {(time.time() - started) / 60:.1f} min.",
        "",
        f"Machine: {host['nproc']} CPUs ({host['cpu']}), Python {host['python']}, Node {host['node']}, "
        f"Linux {host['kernel']}; load average {host['loadavg'][0]:.2f} at the start, {loadavg_end[0]:.2f} at the end "
        "(the machine is shared: other work ran meanwhile, so compare ratios within this run).",
    ]
    if cfg.project_dir != ROOT:
        lines.append(f"\nThe project's web process ran from `{cfg.project_dir}`.")
    lines += ["", table(rows), ""]
    verdicts = judge(rows, cfg.findings)
    if verdicts:
        lines += ["### Targets", "", "| target | verdict | figures |", "| --- | --- | --- |"]
        lines += [f"| {t} | {v} | {f} |" for t, v, f in verdicts]
        lines.append("")
    for key, what in (("profile", "project"), ("profile/project-nofast", "project-nofast, FAST_BROADCAST=0")):
        prof = cfg.findings.get(key)
        if not prof or not prof["total"]:
            continue
        lines += [
            f"### Where the web process spends its time (py-spy, K=1,000 × 20/s, {what})",
            "",
            f"{prof['total']} samples. Own time (the frame itself was running):",
            "",
            "```",
        ]
        lines += [f"{share:5.1f}%  {frame}" for frame, share in prof["self"]]
        lines += ["```", "", "Inclusive (the frame was on the stack):", "", "```"]
        lines += [f"{share:5.1f}%  {frame}" for frame, share in prof["inclusive"]]
        lines += ["```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, print, write."""
    args = parse_args(argv)
    if args.list:
        for name, (runner, quick) in SCENARIOS.items():
            print(f"{name:20} {'quick ' if quick else '      '}{(runner.__doc__ or '').strip()}")
        return 0
    if args.web and args.peers == ",".join(PEERS):
        args.peers = "node,project"  # the seed takes minutes per row and has no target here
    peers = tuple(p.strip() for p in args.peers.split(",") if p.strip())
    cfg = Config(quick=args.quick, project_dir=args.project_dir.resolve(), peers=peers)
    names = args.only or (list(WEB_ROWS) if args.web else None)
    names = names or [name for name, (_r, quick) in SCENARIOS.items() if quick or not args.quick]
    command = "python -m bench" + ("".join(f" {shlex.quote(a)}" for a in sys.argv[1:]) if argv is None else "")
    started, host = time.time(), machine()
    log(f"{len(names)} scenarios: {', '.join(names)}; logs in {log_dir()}")
    rows: list[Row] = []
    failed = []
    try:
        for name in names:
            runner, _quick = SCENARIOS[name]
            t0 = time.monotonic()
            try:
                rows += runner(cfg)
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not lose the others' figures
                failed.append(name)
                log(f"{name} failed: {exc}")
                traceback.print_exc(file=sys.stderr)
                rows.append(Row(name, "ERROR", {}, None, f"{type(exc).__name__}: {str(exc)[:200]}"))
            stop_all()
            log(f"{name} done in {time.monotonic() - t0:.0f} s")
    finally:
        stop_all()
    body = render(rows, cfg, command, started, host, __import__("os").getloadavg())
    print(body)
    if args.json:
        args.json.write_text(json.dumps({"machine": host, "findings": cfg.findings}, indent=1, default=str))
    docs = args.docs or (DOCS if not (args.quick or args.only or args.web) else None)
    if docs and not args.no_docs:
        write_docs(docs, body)
        log(f"wrote {docs}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
