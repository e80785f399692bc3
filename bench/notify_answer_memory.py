"""`python -m bench.notify_answer_memory`: what a destination answering 300 MB costs one notification attempt.

Each case runs in a fresh Python process against a hostile receiver on 127.0.0.1 (harness/hostile_receiver.py,
the 300 MB body streamed, never allocated) and reports the growth of its peak RSS and the bytes the receiver got
to send. The baseline, in the same run: `requests.post` as the attempt used it before (the body read whole). Cases:
`post_webhook` (the body never read) and `send_apprise` to json:// (at most MAX_APPRISE_ANSWER_BYTES read).
Prints each case's median (min–max) over RUNS runs and its ratio to the baseline's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from harness.processes import ROOT

CASES = ("baseline", "webhook", "apprise")
_PROBE = r"""
import json, resource, sys
from backend import destinations
from harness.hostile_receiver import HostileReceiver, wait_closed
case = sys.argv[1]
raw = json.dumps({"type": "BUY", "price": 1, "symbol": "X", "epoch": "e", "seq": 1})
with HostileReceiver() as server:
    import requests
    from tasks import notify as tasks_notify
    webhook = destinations.parse_destination(server.url("/huge"), "X")
    apprise = destinations.parse_destination(server.url("/huge", "json"), "X")  # Apprise's plugins loaded before
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if case == "baseline":
        requests.post(server.url("/huge"), data=raw, timeout=10).close()
    elif case == "webhook":
        tasks_notify.post_webhook(webhook, raw, "s", 10)
    else:
        tasks_notify.send_apprise(apprise, raw, 10)
    exchange = server.received("/huge")[0]
    wait_closed(exchange, 30)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"rss_mib": grown / 1024, "sent_mib": exchange.sent / 2**20}))
"""


def run_case(case: str) -> dict:
    """One CASE in a fresh process: {rss_mib, sent_mib}."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, case], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Run every case RUNS times, interleaved, and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.notify_answer_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    for _ in range(args.runs):
        for case in CASES:
            results[case].append(run_case(case))
    base = statistics.median(r["rss_mib"] for r in results["baseline"])
    print(f"peak RSS growth of one attempt to a 300 MB answer, {args.runs} runs: median (min–max)")
    for case in CASES:
        rss = [r["rss_mib"] for r in results[case]]
        sent = [r["sent_mib"] for r in results[case]]
        print(
            f"{case:9} RSS +{statistics.median(rss):6.1f} MiB ({min(rss):.1f}–{max(rss):.1f}), "
            f"{statistics.median(rss) / base:.3f}× baseline; receiver sent {statistics.median(sent):6.1f} MiB "
            f"({min(sent):.1f}–{max(sent):.1f})"
        )


if __name__ == "__main__":
    main()
