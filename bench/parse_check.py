"""`python -m bench.parse_check`: the relay's per-message check, parse_signal, against the contract's pydantic
Signal model on the same messages (model_validate_json, which alone would still miss the nesting, surrogate and
big-integer rules parse_signal applies), and parse_signal with the model doing its field checks. Prints the
median and spread of REPEAT ratios to parse_signal in the same run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import tempfile
import timeit
from pathlib import Path

from backend.contract import Signal
from backend.signal_schema import _check_values, decode_json, parse_signal

MAX_BYTES = 64 * 1024
# A scan signal as the publisher stores it: the typical message on the channel.
MESSAGE = json.dumps(
    {
        "v": 1,
        "id": "BTCUSDT:ema_cross:1m:1764000000000:BUY",
        "seq": 123456,
        "epoch": "20261207T202600Z-1a2b3c4d",
        "type": "BUY",
        "price": 60123.5,
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "strategy": "ema_cross(9,21)",
        "bar_time": "2026-12-07T20:26:00Z",
        "emitted_at": "2026-12-07T20:27:00.123Z",
        "source": "scan",
        "reason": "EMA 9 crossed above EMA 21",
        "indicators": {"ema_fast": 60100.25, "ema_slow": 60050.5, "rsi": None},
    }
).encode()


def model_check(raw: bytes) -> dict:
    """What parse_signal would be with the model doing the field checks: decode, model, then the value walk."""
    signal = decode_json(raw, "message")
    Signal.model_validate(signal, strict=True)
    _check_values(signal)
    return signal


def baseline_parse(rev: str):
    """parse_signal as backend/signal_schema.py was at git revision REV (the check before a change)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:backend/signal_schema.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_signal_schema.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_signal_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_signal


def compare(rev: str, pairs: int) -> None:
    """Ratio of parse_signal now to parse_signal at REV: PAIRS interleaved pairs, each the best of 20 x 2000."""
    before, ratios = baseline_parse(rev), []
    for _ in range(pairs):
        old = min(timeit.repeat(lambda: before(MESSAGE, MAX_BYTES), number=2000, repeat=20))
        new = min(timeit.repeat(lambda: parse_signal(MESSAGE, MAX_BYTES), number=2000, repeat=20))
        ratios.append(new / old)
    print(
        f"parse_signal now / at {rev}: median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f} ({pairs} pairs)"
    )


def main() -> None:
    """Time both checks REPEAT times, interleaved, and print each one's per-message time and the ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.parse_check", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--baseline-rev", help="also compare parse_signal with itself at this git revision")
    args = parser.parse_args()
    if args.baseline_rev:
        compare(args.baseline_rev, args.repeat)
    fast, model, ratios, both = [], [], [], []
    for _ in range(args.repeat):
        a = timeit.timeit(lambda: parse_signal(MESSAGE, MAX_BYTES), number=args.number) / args.number
        b = timeit.timeit(lambda: Signal.model_validate_json(MESSAGE), number=args.number) / args.number
        fast.append(a)
        model.append(b)
        c = timeit.timeit(lambda: model_check(MESSAGE), number=args.number) / args.number
        ratios.append(b / a)
        both.append(c / a)
    print(f"parse_signal          median {statistics.median(fast) * 1e6:.2f} us/message")
    print(f"Signal model (json)   median {statistics.median(model) * 1e6:.2f} us/message")
    print(
        f"ratio model/parse_signal: median {statistics.median(ratios):.2f}, "
        f"min {min(ratios):.2f}, max {max(ratios):.2f} ({args.repeat} runs of {args.number})"
    )
    print(
        f"ratio (decode + model + value walk)/parse_signal: median {statistics.median(both):.2f}, "
        f"min {min(both):.2f}, max {max(both):.2f}"
    )


if __name__ == "__main__":
    main()
