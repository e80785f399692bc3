"""The signal contract (docs/architecture.md): the one module web and worker share.

The signal's fields, its id, time and epoch helpers, the symbol rule, every Redis key and TTL, the
Socket.IO event names, and the boundary check that every door (channel, publisher, history) applies.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Required, TypedDict

CHANNEL_DEFAULT = "quantum_signals"
SCHEMA_VERSION = 1

EVENT_NEW_SIGNAL = "new_signal"
EVENT_WELCOME = "welcome"
EVENT_RESYNC = "resync"
EVENT_SUBSCRIBE = "subscribe"
# A signal's outcome at one horizon, to the rooms of its symbol: {"epoch", "seq", "id", "h", "r"}.
EVENT_SIGNAL_OUTCOME = "signal_outcome"
OUTCOME_CHANNEL_SUFFIX = ":outcomes"  # SIGNAL_CHANNEL + this: the worker announces each stored outcome there

# Every Redis key of the product.
HISTORY_KEY = "qs:history"  # stream of numbered signals, entry id = seq
# + epoch:symbol: sorted set of the seqs of that symbol's retained history entries (member = score = seq), written
# and trimmed by the publish step with the history, so a read of one symbol costs what it returns.
HISTORY_SYMBOL_PREFIX = "qs:history-sym:"
# + epoch: the first seq the per-symbol index covers (older entries, written before it existed, are scanned).
HISTORY_SYMBOL_START_PREFIX = "qs:history-sym-start:"
SEQ_KEY = "qs:seq"
EPOCH_KEY = "qs:epoch"
LAST_SCAN_KEY = "qs:last_scan"  # unix time of the last completed scan (readiness shows its age)
SENT_PREFIX = "qs:sent:"  # + signal id: the dedupe claim, holding the stored signal
DEDUPE_TTL_S = 7 * 24 * 3600
SCANNED_PREFIX = "qs:scanned:"  # + timeframe:strategy:symbol: the open time of the last bar the scan evaluated
SCANNED_TTL_S = 7 * 24 * 3600
# + timeframe:symbol: the open time of the newest closed bar the scan fetched; the series is fetched again only
# once its next bar may have closed (a 1h series once an hour), also across worker restarts.
FETCHED_PREFIX = "qs:fetched:"
SCAN_LOCK_KEY = "qs:scan-lock"
PUBLISH_LIMIT_PREFIX = "qs:publish-limit"  # + a publish token's hash: its PUBLISH_RATE_LIMIT window
REDBEAT_PREFIX = "qs:redbeat:"
# Notifications (docs/architecture.md, "Notifications"): the dispatcher reads HISTORY_KEY as this consumer group.
NOTIFY_GROUP = "notify"
NOTIFY_QUEUE = "notify"  # the Celery queue of the dispatcher and the deliveries
NOTIFY_STATS_KEY = "qs:notify:stats"  # hash: "<kind>:<sent|retried|dead>" -> count (read by the web's /metrics)
NOTIFY_DEAD_KEY = "qs:notify:dead"  # stream of dead letters (capped at NOTIFY_DEAD_MAXLEN)
NOTIFY_DEAD_MAXLEN = 1000
NOTIFY_RESEND_KEY = "qs:notify:resend"  # list: what `quantum-signals notify resend` put back; dispatch drains it
NOTIFY_SLOW_PREFIX = "qs:notify:slow:"  # + destination id: set while it times out or refuses connections
NOTIFY_SLOW_TTL_S = 60
NOTIFY_PROBE_PREFIX = "qs:notify:probe:"  # + destination id: the lease of the one attempt in flight to it
# Charts (docs/architecture.md, "Charts and outcomes"): the scan keeps the latest closed bars of each pair.
CHART_PREFIX = "qs:chart:"  # + timeframe:symbol: list of bar records [t, o, h, l, c, v, series…], newest last
CHART_META_PREFIX = "qs:chart-meta:"  # + timeframe:symbol: hash {layout: the series' names and panes, last: open ms}
CHART_MAX_BARS = 1000
CHART_TTL_S = 7 * 24 * 3600  # a pair the scan stopped covering disappears after this
# Outcomes: scored by the worker as each horizon's bar closes, kept with the signal's identity.
OUTCOME_PREFIX = "qs:outcome:"  # + epoch:seq: hash {id, sym, strategy, "<h>": r_h}; HSETNX makes scoring idempotent
OUTCOME_TTL_S = 30 * 24 * 3600
OUTCOME_PENDING_PREFIX = "qs:outcome-pending:"  # + timeframe:symbol: zset of signals waiting for bars, score bar ms
OUTCOME_PENDING_PAIRS_KEY = "qs:outcome-pending-pairs"  # set of "timeframe:symbol" with a non-empty pending zset
OUTCOME_CURSOR_KEY = "qs:outcome-cursor"  # "epoch seq": the last history entry routed to the pending sets
# + epoch:strategy: hash of counts, fields "<symbol or *>|signals" and "<symbol or *>|<n, sum or hits>|<h>"
STATS_PREFIX = "qs:stats:"
STATS_INDEX_PREFIX = "qs:stats-index:"  # + epoch: set of the strategies with stats in that epoch
# Outside signals' counts, apart from the scan's: + epoch:["<source>","<strategy>"] (JSON), the same fields.
STATS_OUTSIDE_PREFIX = "qs:stats-outside:"
STATS_OUTSIDE_INDEX_PREFIX = "qs:stats-outside-index:"  # + epoch: set of the JSON ["<source>","<strategy>"] counted
STATS_NOT_COUNTED_PREFIX = "qs:stats-not-counted:"  # + epoch: signals left out of the stats by STATS_MAX_ENTRIES
STATS_TTL_S = 30 * 24 * 3600


def outcome_channel(signal_channel: str) -> str:
    """The channel on which the worker announces stored outcomes, next to SIGNAL_CHANNEL."""
    return signal_channel + OUTCOME_CHANNEL_SUFFIX


def chart_key(timeframe: str, symbol: str) -> str:
    """The list of the bars kept for SYMBOL at TIMEFRAME."""
    return f"{CHART_PREFIX}{timeframe}:{symbol}"


def chart_meta_key(timeframe: str, symbol: str) -> str:
    """The hash describing the bars kept for SYMBOL at TIMEFRAME."""
    return f"{CHART_META_PREFIX}{timeframe}:{symbol}"


def outcome_key(epoch: str, seq: int) -> str:
    """The hash of the outcomes of signal SEQ of EPOCH."""
    return f"{OUTCOME_PREFIX}{epoch}:{seq}"


def stats_key(epoch: str, strategy: str) -> str:
    """The hash of the outcome counts of the scan's STRATEGY in EPOCH (totals and per symbol)."""
    return f"{STATS_PREFIX}{epoch}:{strategy}"


def outside_stats_key(epoch: str, entry: str) -> str:
    """The hash of the outcome counts of outside signals of ENTRY (JSON [source, strategy]) in EPOCH."""
    return f"{STATS_OUTSIDE_PREFIX}{epoch}:{entry}"


# An exchange's market id (BTCUSDT) or ccxt's unified form (BTC/USDT, BTC/USDT:USDT).
SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9/:._-]{0,31}")

MAX_DEPTH = 32  # levels of nesting; deeper structures break encoders that recurse (Socket.IO's packet check)
MAX_SEQ = 2**63 - 1  # Redis INCR's ceiling: a larger seq was never assigned by the publisher
EPOCH_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Socket.IO decoders refuse integers of over 100 characters (python-socketio) and browsers round past 2**53:
# a signal holds none beyond this bound, which also keeps str() clear of Python's 4,300-digit limit.
MAX_ABS_INT = 10**64


def valid_symbol(symbol: object) -> bool:
    """True for a symbol of the contract: upper case, ^[A-Z0-9][A-Z0-9/:._-]{0,31}$."""
    return isinstance(symbol, str) and SYMBOL_RE.fullmatch(symbol) is not None


def new_epoch() -> str:
    """A fresh opaque epoch name."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


def utc_iso(ms: int | None = None, millis: bool = False) -> str:
    """ISO-8601 UTC with Z, from epoch milliseconds (now when None)."""
    moment = datetime.now(UTC) if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


# A timeframe: a number and a unit, e.g. 1s, 15m, 4h, 1d, 1w.
TIMEFRAME_RE = re.compile(r"([1-9][0-9]{0,3})([smhdw])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds, e.g. "1m" -> 60000; raise ValueError for an unknown one."""
    match = TIMEFRAME_RE.fullmatch(timeframe) if isinstance(timeframe, str) else None
    if not match:
        raise ValueError(
            f"timeframe {timeframe!r} is not understood; use a number and a unit s/m/h/d/w, e.g. 1s, 1m, 1h, 1d"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def signal_id(symbol: str, strategy: str, timeframe: str, bar_time_ms: int, kind: str) -> str:
    """The deterministic dedupe key: {symbol}:{strategy}:{timeframe}:{bar_time_ms}:{type}."""
    return f"{symbol}:{strategy}:{timeframe}:{bar_time_ms}:{kind}"


# Outside signals' ids (HTTP intake, CLI) all start with this; the scan's start with an upper-case symbol, so no
# outside signal can take a scan signal's id, whatever it sends (docs/architecture.md, invariant 10).
OUTSIDE_ID_PREFIX = "ext:"


def outside_id(given: str) -> str:
    """The stored id of an outside signal whose publisher gave (or derived) GIVEN."""
    return OUTSIDE_ID_PREFIX + given


class SignalType(StrEnum):
    """The two kinds of signal."""

    BUY = "BUY"
    SELL = "SELL"


class Signal(TypedDict, total=False):
    """A signal's fields for type checkers: backend/contract.py's Signal model (tests/backend/test_contract.py)."""

    v: int
    id: str
    seq: int
    epoch: str
    type: Required[str]
    price: Required[float]
    symbol: str
    timeframe: str
    strategy: str
    bar_time: str
    emitted_at: str
    source: str
    reason: str
    indicators: dict[str, float | None]  # null where the indicator is undefined (JSON has no NaN)


# The optional fields that are text when present (null allowed): backend/contract.py's Signal, whose agreement
# with these checks tests/backend/test_contract.py proves.
TEXT_FIELDS = ("symbol", "timeframe", "strategy", "bar_time", "reason", "id", "source", "emitted_at")
_TEXT_TYPES = frozenset({str, type(None)})
_NUMBER_TYPES = frozenset({int, float, type(None)})


class InvalidSignal(ValueError):
    """A message on the channel that is not a signal; the message says what was wrong."""


def parse_signal(raw: bytes | str, max_bytes: int) -> dict[str, Any]:
    """Decode and validate one channel message; raise InvalidSignal with the reason."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise InvalidSignal(f"message of {len(raw)} bytes exceeds MAX_SIGNAL_BYTES={max_bytes}")
    # Valid UTF-8 cannot hold a lone surrogate: only a JSON escape (backslash, u, D800-DFFF) makes one, so a
    # message with no such escape skips the per-string check (the relay's hot path).
    escapes = b"\\ud" in raw or b"\\uD" in raw
    return validate_signal(decode_json(raw, "message"), check_text=escapes)


def decode_json(raw: bytes, what: str) -> object:
    """RAW as a JSON value (NaN/Infinity refused); raise InvalidSignal saying what about WHAT was wrong."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidSignal(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise InvalidSignal(f"{what} JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidSignal(f"{what} is not JSON: {shorten(str(exc), 120)}") from None


def validate_signal(signal: object, check_text: bool = True) -> dict[str, Any]:
    """Check the required fields of a signal object; return it unchanged (CHECK_TEXT: look for lone surrogates)."""
    if not isinstance(signal, dict):
        raise InvalidSignal(f"signal must be a JSON object, got {type(signal).__name__}")
    kind = signal.get("type")
    if kind not in (SignalType.BUY.value, SignalType.SELL.value):
        raise InvalidSignal(f'signal "type" must be "BUY" or "SELL", got {shorten(kind)}')
    price = signal.get("price")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        raise InvalidSignal(f'signal "price" must be a JSON number, got {type(price).__name__}')
    if not 0 < price <= sys.float_info.max:  # NaN, ±inf, and ints a float (a browser) cannot hold
        raise InvalidSignal(f'signal "price" must be finite and > 0, got {shorten(price)}')
    symbol = signal.get("symbol")
    if symbol is not None and not isinstance(symbol, str):
        raise InvalidSignal(f'signal "symbol" must be a string, got {type(symbol).__name__}')
    seq = signal.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ):
        raise InvalidSignal(f'signal "seq" must be a positive integer up to 2**63-1, got {shorten(seq)}')
    epoch = signal.get("epoch")
    if epoch is not None and not (isinstance(epoch, str) and EPOCH_RE.fullmatch(epoch)):
        raise InvalidSignal(f'signal "epoch" must be 1-64 letters, digits or ._:-, got {shorten(epoch)}')
    _check_values(signal, check_text)
    # After the walk, whose refusals (nesting, values) come first. One C-level pass over the fields (the relay's
    # hot path); the loop runs only to name what is wrong.
    if not set(map(type, map(signal.get, TEXT_FIELDS))) <= _TEXT_TYPES:
        for name in TEXT_FIELDS:
            value = signal.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidSignal(f'signal "{name}" must be a string, got {type(value).__name__}')
    version = signal.get("v")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidSignal(f'signal "v" must be an integer, got {shorten(version)}')
    indicators = signal.get("indicators")
    if indicators is not None and not _numbers_or_null(indicators):
        raise InvalidSignal(f'signal "indicators" must be an object of numbers or null, got {shorten(indicators)}')
    return signal


def _numbers_or_null(value: object) -> bool:
    """True for an object whose values are all JSON numbers or null (the contract's indicators)."""
    if not isinstance(value, dict):
        return False
    if set(map(type, value.values())) <= _NUMBER_TYPES:
        return True
    return all(
        item is None or (isinstance(item, (int, float)) and not isinstance(item, bool)) for item in value.values()
    )


def _check_values(signal: dict[str, Any], check_text: bool = True) -> None:
    """Reject nesting deeper than MAX_DEPTH, non-JSON values and text that is not valid Unicode (iteratively)."""
    stack: list[tuple[object, int]] = [(signal, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise InvalidSignal(f"signal is nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise InvalidSignal(f"signal keys must be strings, got {type(key).__name__}")
                    if check_text:
                        _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if check_text:
                _check_text(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidSignal(f"signal holds {value!r}, which is not valid JSON")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_ABS_INT:
            raise InvalidSignal("signal holds an integer of over 64 digits; send it as a string")
        elif value is not None and not isinstance(value, (bool, int)):
            raise InvalidSignal(f"signal holds a {type(value).__name__}, which is not a JSON value")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSignal(
            "signal text holds a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
        ) from None


def shorten(value: object, limit: int = 60) -> str:
    """repr of VALUE cut to LIMIT characters: error messages and logs quote what strangers sent."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_ABS_INT:
        return "an integer of over 64 digits"  # repr of a huge int is slow, or refused past 4,300 digits
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")
