"""Client parameters, one parser per kind, shared by both doors (Socket.IO connect and subscribe, HTTP queries).

Each parser takes what the client sent (a query-string value, or any JSON value from connect auth), treats
None and "" as absent, and raises BadRequest with a message naming the parameter.
"""

from __future__ import annotations

import re

from backend.signal_schema import valid_symbol

MAX_SYMBOLS = 200
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_STREAM_SEQ = 2**64 - 1  # a stream id's ceiling: a larger cursor is the client's error, not Redis's
# int() alone also takes "1_0", " 7 ", "١٢" (any Unicode digit) and "+5": a query's integer is ASCII digits.
INTEGER_RE = re.compile(r"-?[0-9]+")


class BadRequest(ValueError):
    """A client parameter that cannot be used; the message says which and why."""


def _absent(value: object) -> bool:
    return value is None or value == ""


def parse_int(name: str, value: object, lo: int, hi: int | None = None) -> int | None:
    """VALUE as an integer in lo..hi (hi None: no ceiling), or None when absent."""
    if _absent(value):
        return None
    if isinstance(value, bool):  # JSON true is not the number 1
        raise BadRequest(f"{name}={value!r} is not an integer")
    if isinstance(value, str) and not INTEGER_RE.fullmatch(value):
        raise BadRequest(f"{name}={value[:40]!r} is not an integer; write it in the digits 0-9 only")
    try:
        number = int(value)  # type: ignore[call-overload]  # any JSON value: what int() cannot take is caught
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity, which JSON auth may carry
        raise BadRequest(f"{name}={value!r} is not an integer") from None
    if number < lo or (hi is not None and number > hi):
        raise BadRequest(f"{name}={number} is out of range ({lo}..{hi if hi is not None else '∞'})")
    return number


def parse_since(value: object, hi: int | None = None) -> int | None:
    """The client's cursor: a seq ≥ 0 (at most HI), or None when absent."""
    return parse_int("since", value, 0, hi)


def parse_limit(value: object) -> int:
    """How many signals to answer: 1..MAX_LIMIT, DEFAULT_LIMIT when absent."""
    limit = parse_int("limit", value, 1, MAX_LIMIT)
    return DEFAULT_LIMIT if limit is None else limit


def parse_symbol(value: object) -> str | None:
    """One symbol of the contract (upper-cased), or None when absent."""
    if _absent(value):
        return None
    symbol = value.upper() if isinstance(value, str) and value.isascii() else value
    if not isinstance(symbol, str) or not valid_symbol(symbol):  # valid_symbol refuses a non-str as well
        raise BadRequest(f"symbol={symbol!r} is not a symbol such as BTCUSDT")
    return symbol


def parse_symbols(value: object) -> frozenset[str] | None:
    """A symbol filter from a list or a comma-separated string; None means all symbols."""
    if _absent(value):
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise BadRequest('"symbols" must be a list of symbol strings such as ["BTCUSDT"]')
    symbols = frozenset((s.strip().upper() if s.isascii() else s) for s in value if s.strip())
    if len(symbols) > MAX_SYMBOLS or not all(valid_symbol(s) for s in symbols):
        raise BadRequest(f'"symbols" must hold at most {MAX_SYMBOLS} symbols such as BTCUSDT or BTC/USDT')
    return symbols or None
