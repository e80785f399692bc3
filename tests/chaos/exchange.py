"""The loopback exchange with a consistent market history: a symbol's bar k is the same whenever it is asked for.

harness/exchange.py anchors a fixed series to "now", so yesterday's bars change every second; here a symbol
is `zigzag` (the close alternates around a level every bar, so SMA(1)/SMA(2) crosses on EVERY bar: one signal
per symbol per bar, each bar's signal fixed forever) or `flat` (nothing ever crosses). Faults, latency and the
frozen clock of ExchangeServer still apply. Run: `python -m tests.chaos.exchange --port N`;
`POST /_control {"zigzag": [...], "flat": [...]}` switches symbols.
"""

from __future__ import annotations

import argparse
import signal
import threading
import zlib

from harness.exchange import ExchangeServer

STRATEGY = "sma_cross:fast=1,slow=2"


class ConsistentExchange(ExchangeServer):
    """ExchangeServer whose bars are a pure function of (symbol, bar index)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zigzag: set[str] = set()

    def control(self, command: dict) -> None:
        """ExchangeServer's /_control plus {"zigzag": [symbols], "flat": [symbols]}; both kinds are listed markets."""
        with self._lock:
            self.zigzag |= set(command.get("zigzag") or ())
            self.zigzag -= set(command.get("flat") or ())
            self._listed |= set(command.get("zigzag") or ()) | set(command.get("flat") or ())
        super().control({k: v for k, v in command.items() if k not in ("zigzag", "flat")})

    def _rows(self, symbol: str, bar_ms: int, limit: int) -> list[list]:
        import time

        with self._lock:
            moving = symbol in self.zigzag
        now_ms = self.now_ms if self.now_ms is not None else int(time.time() * 1000)
        open_index = now_ms // bar_ms
        level = 100 + zlib.crc32(symbol.encode()) % 50
        rows = []
        for index in range(open_index - limit + 1, open_index + 1):
            close = level * (1.01 if index % 2 else 0.99) if moving else float(level)
            previous = level * (1.01 if (index - 1) % 2 else 0.99) if moving else float(level)
            high, low = max(previous, close) * 1.001, min(previous, close) * 0.999
            open_time = index * bar_ms
            rows.append(
                [
                    open_time,
                    f"{previous:.8f}",
                    f"{high:.8f}",
                    f"{low:.8f}",
                    f"{close:.8f}",
                    "10.00000000",
                    open_time + bar_ms - 1,
                    f"{10 * close:.8f}",
                    100,
                    "5.00000000",
                    f"{5 * close:.8f}",
                    "0",
                ]
            )
        return rows


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.exchange", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with ConsistentExchange("127.0.0.1", args.port) as exchange:
        print(f"listening on {exchange.url}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
