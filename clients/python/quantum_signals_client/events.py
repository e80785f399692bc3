"""What the client yields: a signal, a resync (the history restarted), an outcome. Plain typed records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ProtocolError(ValueError):
    """A server event whose payload is not of the contract's shape."""


@dataclass(frozen=True)
class Cursor:
    """A position in the server's history: the last seq handled in EPOCH (0: none yet in that epoch)."""

    epoch: str
    seq: int


@dataclass(frozen=True)
class Signal:
    """One `new_signal`. `seq`/`epoch` are None for a live-only signal published straight on the channel."""

    type: str
    price: float
    seq: int | None = None
    epoch: str | None = None
    id: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    strategy: str | None = None
    bar_time: str | None = None
    emitted_at: str | None = None
    source: str | None = None
    reason: str | None = None
    indicators: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: object) -> Signal:
        """The signal in a `new_signal` payload; ProtocolError when it lacks `type` or a numeric `price`."""
        if not isinstance(payload, dict):
            raise ProtocolError(f"new_signal payload is not an object: {payload!r:.200}")
        kind, price = payload.get("type"), payload.get("price")
        if not isinstance(kind, str) or isinstance(price, bool) or not isinstance(price, int | float):
            raise ProtocolError(f"new_signal without a type and a numeric price: {payload!r:.200}")
        seq, epoch = payload.get("seq"), payload.get("epoch")
        numbered = isinstance(seq, int) and not isinstance(seq, bool) and isinstance(epoch, str) and epoch
        return cls(
            type=kind,
            price=price,
            seq=seq if numbered else None,
            epoch=epoch if numbered else None,
            **{name: _text(payload, name) for name in _TEXT_FIELDS},
            indicators=payload["indicators"] if isinstance(payload.get("indicators"), dict) else None,
            raw=payload,
        )

    @property
    def cursor(self) -> Cursor | None:
        """Where this signal puts the cursor; None for a live-only signal."""
        return Cursor(self.epoch, self.seq) if self.epoch is not None and self.seq is not None else None


_TEXT_FIELDS = ("id", "symbol", "timeframe", "strategy", "bar_time", "emitted_at", "source", "reason")


def _text(payload: dict, name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Resync:
    """The server's history restarted (Redis lost its data): signals start again at seq 1 of EPOCH.

    PREVIOUS is the cursor the client had before (None when it had none).
    """

    epoch: str
    previous: Cursor | None = None

    @property
    def cursor(self) -> Cursor:
        """The cursor once this event is handled: the start of the new epoch."""
        return Cursor(self.epoch, 0)


@dataclass(frozen=True)
class Outcome:
    """One `signal_outcome`: the return R of signal (EPOCH, SEQ, ID) H bars after it."""

    epoch: str
    seq: int
    id: str | None
    h: int
    r: float

    @classmethod
    def from_payload(cls, payload: object) -> Outcome:
        """The outcome in a `signal_outcome` payload; ProtocolError when a field is missing or of a wrong type."""
        if not isinstance(payload, dict):
            raise ProtocolError(f"signal_outcome payload is not an object: {payload!r:.200}")
        epoch, seq, h, r = (payload.get(name) for name in ("epoch", "seq", "h", "r"))
        if not (isinstance(epoch, str) and _is_int(seq) and _is_int(h) and (_is_int(r) or isinstance(r, float))):
            raise ProtocolError(f"signal_outcome not of the contract's shape: {payload!r:.200}")
        return cls(epoch, seq, _text(payload, "id"), h, r)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


Event = Signal | Resync | Outcome
