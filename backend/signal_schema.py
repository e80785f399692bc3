"""The signal contract: names shared by publisher, relay, worker and clients, and the boundary check."""

from __future__ import annotations

import json
import math
from enum import Enum

CHANNEL_DEFAULT = "quantum_signals"
SCHEMA_VERSION = 1

EVENT_NEW_SIGNAL = "new_signal"
EVENT_WELCOME = "welcome"
EVENT_RESYNC = "resync"
EVENT_SUBSCRIBE = "subscribe"

HISTORY_KEY = "qs:history"
SEQ_KEY = "qs:seq"
EPOCH_KEY = "qs:epoch"
LAST_SCAN_KEY = "qs:last_scan"


class SignalType(str, Enum):
    """The two kinds of signal."""

    BUY = "BUY"
    SELL = "SELL"


class InvalidSignal(ValueError):
    """A message on the channel that is not a signal; the message says what was wrong."""


def parse_signal(raw: bytes | str, max_bytes: int) -> dict:
    """Decode and validate one channel message; raise InvalidSignal with the reason."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise InvalidSignal(f"message of {len(raw)} bytes exceeds MAX_SIGNAL_BYTES={max_bytes}")
    try:
        text = raw.decode("utf-8")
        signal = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidSignal(f"message is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise InvalidSignal("message JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidSignal(f"message is not JSON: {exc}") from None
    return validate_signal(signal)


def validate_signal(signal: object) -> dict:
    """Check the required fields of a signal object; return it unchanged."""
    if not isinstance(signal, dict):
        raise InvalidSignal(f"signal must be a JSON object, got {type(signal).__name__}")
    kind = signal.get("type")
    if kind not in (SignalType.BUY.value, SignalType.SELL.value):
        raise InvalidSignal(f'signal "type" must be "BUY" or "SELL", got {kind!r}')
    price = signal.get("price")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        raise InvalidSignal(f'signal "price" must be a JSON number, got {type(price).__name__}')
    if not math.isfinite(price) or price <= 0:
        raise InvalidSignal(f'signal "price" must be finite and > 0, got {price!r}')
    symbol = signal.get("symbol")
    if symbol is not None and not isinstance(symbol, str):
        raise InvalidSignal(f'signal "symbol" must be a string, got {type(symbol).__name__}')
    seq = signal.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 1):
        raise InvalidSignal(f'signal "seq" must be a positive integer, got {seq!r}')
    return signal


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")
