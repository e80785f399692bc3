"""Outside signals (TradingView alerts, other services, the CLI) turned into contract signals: pure, no I/O.

Shared by `POST /api/signals` and `flask signals publish` (the body is decoded by signal_schema.decode_json):
normalize_signal checks the fields and normalizes what outside senders send differently from
the project's publisher (a lower-case type, a price as a numeric string, a lower-case symbol, a local time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from backend.signal_schema import (
    InvalidSignal,
    shorten,
    signal_id,
    valid_symbol,
)

FIELDS = ("type", "price", "symbol", "timeframe", "strategy", "bar_time", "reason", "indicators", "id", "source")
# Longest text of each label field: enough for any timeframe, strategy spec or id, short enough to log.
LABEL_CHARS = {"timeframe": 32, "strategy": 128, "id": 256, "source": 64}
# A decimal number as text, as TradingView renders {{close}} inside quotes; float() alone would also take
# "nan", "inf", " 1 " and "1_000".
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)
MAX_NUMBER_CHARS = 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalize_signal(body: object, default_source: str) -> dict:
    """The contract signal of an outside BODY; raise InvalidSignal naming what is wrong."""
    if not isinstance(body, dict):
        raise InvalidSignal(f"signal must be a JSON object, got {type(body).__name__}")
    unknown = [name for name in body if name not in FIELDS]
    if unknown:
        shown = ", ".join(shorten(name, 40) for name in unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise InvalidSignal(f"unknown fields {shown}; a signal has only {', '.join(FIELDS)}")
    signal = dict(body)
    if isinstance(signal.get("type"), str) and signal["type"].isascii():  # "ſell".upper() would be SELL
        signal["type"] = signal["type"].upper()
    signal["price"] = _number("price", signal.get("price"))
    if "symbol" in signal:
        signal["symbol"] = _symbol(signal["symbol"])
    for name, limit in LABEL_CHARS.items():
        if name in signal:
            _label(name, signal[name], limit)
    if "reason" in signal and not isinstance(signal["reason"], str):
        raise InvalidSignal(f'signal "reason" must be text, got {type(signal["reason"]).__name__}')
    if "indicators" in signal:
        signal["indicators"] = _indicators(signal["indicators"])
    bar_ms = None
    if "bar_time" in signal:
        signal["bar_time"], bar_ms = _bar_time(signal["bar_time"])
    signal.setdefault("source", default_source)  # the publisher runs the contract's full check
    if "id" not in signal and bar_ms is not None and all(k in signal for k in ("symbol", "timeframe", "strategy")):
        signal["id"] = signal_id(signal["symbol"], signal["strategy"], signal["timeframe"], bar_ms, signal["type"])
    return signal


def _number(name: str, value: object) -> object:
    """VALUE, or the float of a numeric string; anything else is left for the publisher's check to refuse."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_NUMBER_CHARS or not NUMBER_RE.fullmatch(value):
        raise InvalidSignal(f'signal "{name}" must be a number or a numeric string, got {shorten(value)}')
    return float(value)


def _symbol(value: object) -> str:
    if not isinstance(value, str) or not value.isascii() or not valid_symbol(value.upper()):
        raise InvalidSignal(f'signal "symbol" must be a symbol such as BTCUSDT or BTC/USDT, got {shorten(value)}')
    return value.upper()


def _label(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.isprintable():
        raise InvalidSignal(f'signal "{name}" must be printable text of 1-{limit} characters, got {shorten(value)}')


def _indicators(value: object) -> dict:
    if not isinstance(value, dict):
        raise InvalidSignal(f'signal "indicators" must be an object of numbers, got {type(value).__name__}')
    indicators = {}
    for key, item in value.items():
        name = f"indicators[{shorten(key, 40)}]"
        number = _number(name, item)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise InvalidSignal(f'signal "{name}" must be a number or a numeric string, got {shorten(item)}')
        indicators[key] = number
    return indicators


def _bar_time(value: object) -> tuple[str, int]:
    """(ISO-8601 UTC text with Z, epoch milliseconds) of an ISO-8601 VALUE with a time zone."""
    hint = 'signal "bar_time" must be ISO-8601 with a time zone, e.g. 2026-11-25T16:42:00Z'
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidSignal(f"{hint}, got {shorten(value)}")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:  # a local time of an unknown zone would shift the bar and its id
            raise ValueError("no time zone")
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidSignal(f"{hint}, got {shorten(value)}") from None
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")
    return text, (moment - EPOCH) // timedelta(milliseconds=1)
