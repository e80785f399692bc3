"""`python -m bench.floor`: the latency floor, a redis-py SUBSCRIBE on the channel with no websocket hop.

Prints {"type": "ready"} once subscribed, then one report shaped like the load generator's after COUNT
signals of ROUND arrived or DEADLINE seconds passed.
"""

from __future__ import annotations

import argparse
import json
import time

import redis

from bench.stats import Histogram


def main() -> None:
    """Subscribe, receive, report."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", default="quantum_signals")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--round", required=True)
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds to wait at most")
    args = parser.parse_args()
    pubsub = redis.Redis.from_url(args.redis).pubsub()
    pubsub.subscribe(args.channel)
    confirm_by = time.monotonic() + 10
    while time.monotonic() < confirm_by:  # live once Redis confirms the subscription
        message = pubsub.get_message(timeout=1.0)
        if message and message["type"] == "subscribe":
            break
    print(json.dumps({"type": "ready"}), flush=True)
    hist, seen, dup, cpu0 = Histogram(), set(), 0, time.process_time()
    end = time.monotonic() + args.deadline
    while len(seen) < args.count and time.monotonic() < end:
        message = pubsub.get_message(timeout=0.5)
        if message is None or message["type"] != "message":
            continue
        signal = json.loads(message["data"])
        received = time.time() * 1000
        if signal.get("round") != args.round:
            continue
        if signal["n"] in seen:
            dup += 1
            continue
        seen.add(signal["n"])
        hist.add(received - signal["t_pub"])
    print(
        json.dumps(
            {
                "type": "report",
                "clients": 1,
                "expected": args.count,
                "unique": len(seen),
                "dup": dup,
                "hist": hist.sparse(),
                "cpu_s": time.process_time() - cpu0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
