"""`python -m bench.publish`: publish COUNT signals at RATE per second with the project's Publisher.

Each signal is a scanner-shaped signal plus `round`, `n` (0..COUNT-1, for loss and duplicate counts) and
`t_pub` (epoch ms float, taken just before the publish call, for latency). Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import time

from backend.publisher import Publisher
from backend.redis_client import make_redis

BAR_MS = 1_800_000_000_000


def make_signals(round_id: str, count: int) -> list[dict]:
    """COUNT signals shaped like the scanner's, ids unique per round."""
    signals = []
    for n in range(count):
        bar_ms = BAR_MS + n * 60_000
        kind = "BUY" if n % 2 == 0 else "SELL"
        signals.append(
            {
                "v": 1,
                "id": f"BTCUSDT:sma_cross:fast=9,slow=21:1m:{bar_ms}:{kind}:{round_id}",
                "type": kind,
                "price": 60000.0 + n % 1000,
                "symbol": "BTCUSDT",
                "timeframe": "1m",
                "strategy": "sma_cross:fast=9,slow=21",
                "bar_time": "2027-01-15T08:00:00Z",
                "source": "bench",
                "reason": "SMA(9) crossed above SMA(21)" if kind == "BUY" else "SMA(9) crossed below SMA(21)",
                "indicators": {"sma_fast": 60012.1234, "sma_slow": 60008.5678},
                "round": round_id,
                "n": n,
            }
        )
    return signals


def publish(redis_url: str, channel: str, rate: float, count: int, round_id: str, at: float | None = None) -> dict:
    """Publish on an absolute schedule (n / RATE after AT, epoch s); a late publish goes out at once."""
    client = make_redis(redis_url)
    publisher = Publisher(client, channel, history_maxlen=10_000, max_bytes=65_536)
    client.ping()
    signals = make_signals(round_id, count)
    start = time.perf_counter() + max(0.0, (at or 0.0) - time.time())
    start_epoch_ms = (time.time() + start - time.perf_counter()) * 1000
    worst_late = 0.0
    for n, signal in enumerate(signals):
        due = start + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        else:
            worst_late = max(worst_late, -wait)
        signal["t_pub"] = time.time() * 1000
        publisher.publish_signal(signal)
    seconds = time.perf_counter() - start
    return {
        "type": "published",
        "sent": count,
        "start_ms": start_epoch_ms,
        "seconds": seconds,
        "rate": count / seconds if seconds > 0 else 0.0,
        "worst_late_ms": worst_late * 1000,
    }


def main() -> None:
    """Parse the arguments, publish, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.publish")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", default="quantum_signals")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--round", required=True)
    parser.add_argument("--at", type=float, default=None, help="epoch seconds of the first publish")
    args = parser.parse_args()
    print(json.dumps(publish(args.redis, args.channel, args.rate, args.count, args.round, args.at)), flush=True)


if __name__ == "__main__":
    main()
