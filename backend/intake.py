"""Outside signals (TradingView alerts, other services, the CLI) turned into contract signals: pure, no I/O.

Shared by `POST /api/signals` and `quantum-signals signals publish` (the body is decoded by
signal_schema.decode_json): normalize_signal checks the fields, normalizes what outside senders send differently
from the project's publisher (a lower-case type, a price as a numeric string, a lower-case symbol, a local time),
refuses a bar_time in the future, and gives the signal its outside id (docs/architecture.md, invariant 10).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.contract import IncomingSignal
from backend.signal_schema import (
    InvalidSignal,
    outside_id,
    shorten,
    signal_id,
    timeframe_ms,
    valid_symbol,
)

# The fields an outside signal may have: the contract's IncomingSignal (POST /api/signals's body), in its order.
FIELDS = tuple(IncomingSignal.model_fields)
# Longest text of each label field: enough for any timeframe, strategy spec or id, short enough to log.
LABEL_CHARS = {"timeframe": 32, "strategy": 128, "id": 256, "source": 64}
# A decimal number as text, as TradingView renders {{close}} inside quotes; float() alone would also take
# "nan", "inf", " 1 " and "1_000".
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)
MAX_NUMBER_CHARS = 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far ahead of our clock a bar_time may be when the signal names no timeframe we know: clock skew, no more.
FUTURE_TOLERANCE_S = 60
# The fields whose values, all given by the publisher, make its id (signal_schema.signal_id).
ID_FIELDS = ("symbol", "strategy", "timeframe", "bar_time", "type")


def normalize_signal(
    body: object, default_source: str, defaults: Mapping[str, object] | None = None, now_ms: int | None = None
) -> dict[str, Any]:
    """The contract signal of an outside BODY; raise InvalidSignal naming what is wrong.

    Its id comes only from BODY: `ext:` + the id sent, else `ext:` + the id derived from the five ID_FIELDS
    when all were sent, else `ext:` + a fresh UUID. DEFAULTS (fields a door fills in itself) are added after,
    so they never make an id. A bar_time more than one timeframe after NOW_MS (the clock's) is refused.
    """
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
        _not_ahead(signal, bar_ms, int(time.time() * 1000) if now_ms is None else now_ms)
    signal.setdefault("source", default_source)  # the publisher runs the contract's full check
    if "id" in signal:
        given = signal["id"]
    elif bar_ms is not None and all(name in signal for name in ID_FIELDS):  # bar_time is one of them
        given = signal_id(signal["symbol"], signal["strategy"], signal["timeframe"], bar_ms, signal["type"])
    else:  # nothing the publisher gave names it: a signal of its own, never merged with another
        given = uuid.uuid4().hex
    signal["id"] = outside_id(given)
    for name, value in (defaults or {}).items():
        signal.setdefault(name, value)
    return signal


def _not_ahead(signal: dict[str, Any], bar_ms: int, now_ms: int) -> None:
    """Refuse a bar_time more than one timeframe (FUTURE_TOLERANCE_S without a known one) after NOW_MS."""
    timeframe = signal.get("timeframe")
    try:
        if not isinstance(timeframe, str):
            raise ValueError("no timeframe")
        bound_ms = timeframe_ms(timeframe)
        allowed = f"at most one timeframe ({timeframe}: {bound_ms // 1000} s) ahead is allowed"
    except ValueError:
        bound_ms = FUTURE_TOLERANCE_S * 1000
        which = (
            "no timeframe was sent" if timeframe is None else f'timeframe "{timeframe}" is not one this server knows'
        )
        allowed = f"{which} (one is e.g. 1m, 1h, 1d), so at most {FUTURE_TOLERANCE_S} s ahead is allowed"
    if bar_ms - now_ms > bound_ms:
        ahead = (bar_ms - now_ms) // 1000
        raise InvalidSignal(
            f'signal "bar_time" {signal["bar_time"]} is {ahead} s ahead of this server\'s clock; {allowed}'
        )


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


def _indicators(value: object) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise InvalidSignal(f'signal "indicators" must be an object of numbers, got {type(value).__name__}')
    indicators: dict[str, float | None] = {}
    for key, item in value.items():
        name = f"indicators[{shorten(key, 40)}]"
        if item is None:  # undefined, as the scan sends an indicator still warming up (JSON has no NaN)
            indicators[key] = None
            continue
        number = _number(name, item)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise InvalidSignal(f'signal "{name}" must be a number, a numeric string or null, got {shorten(item)}')
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
