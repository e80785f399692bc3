"""The contract's message shapes as pydantic models: the one source of /api/openapi.json and /api/asyncapi.json.

The signal, its outcome, the Socket.IO events, the Redis channels' messages and the webhook (body and headers),
for web and worker alike (docs/architecture.md, "The contract"). Imports pydantic only, never the web stack.
The rules come from backend/signal_schema.py's constants; its parse_signal stays the relay's fast check and
tests/backend/test_contract.py proves that it and these models agree.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.signal_schema import EPOCH_RE, MAX_SEQ, SYMBOL_RE, TIMEFRAME_RE

SYMBOL_PATTERN = f"^{SYMBOL_RE.pattern}$"
EPOCH_PATTERN = f"^{EPOCH_RE.pattern}$"
TIMEFRAME_PATTERN = f"^{TIMEFRAME_RE.pattern}$"
# Quantum-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")> (backend/destinations.py).
SIGNATURE_PATTERN = r"^t=[0-9]+,v1=[0-9a-f]{64}$"
# Idempotency-Key: <epoch>:<seq> of the signal delivered.
IDEMPOTENCY_PATTERN = r"^[A-Za-z0-9._:-]{1,64}:[1-9][0-9]*$"


class Signal(BaseModel):
    """A signal of the contract as stored and relayed: the `new_signal` event, the webhook body, history entries."""

    model_config = ConfigDict(extra="allow")

    seq: int | None = Field(
        None, ge=1, le=MAX_SEQ, description="Position in the history of its epoch (numbered signals)"
    )
    epoch: str | None = Field(None, pattern=EPOCH_PATTERN, description="The history this seq belongs to")
    type: Literal["BUY", "SELL"]
    price: float = Field(gt=0, allow_inf_nan=False, description="Finite and > 0")
    symbol: str | None = Field(None, description=f"The project's publisher and the intake take {SYMBOL_PATTERN}")
    timeframe: str | None = None
    strategy: str | None = None
    bar_time: str | None = Field(None, description="ISO-8601 UTC open time of the bar, with Z")
    reason: str | None = None
    indicators: dict[str, float | None] | None = Field(None, description="null where an indicator is undefined")
    id: str | None = Field(
        None, description="Stable id: a retry with the same id is not published again; outside ids start ext:"
    )
    source: str | None = None
    v: int | None = Field(None, description="Schema version")
    emitted_at: str | None = None


class IncomingSignal(BaseModel):
    """A signal sent to POST /api/signals (JSON, or text/plain holding JSON: TradingView's webhooks)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="BUY or SELL, any case", examples=["buy"])
    price: float | str = Field(description="A number, or a decimal number as text", examples=["60000.5"])
    symbol: str | None = Field(None, examples=["BTCUSDT"])
    timeframe: str | None = Field(None, examples=["60"])
    strategy: str | None = Field(None, examples=["tradingview"])
    bar_time: str | None = Field(None, description="ISO-8601 with a time zone", examples=["2026-11-25T16:42:00Z"])
    reason: str | None = None
    indicators: dict[str, float | str | None] | None = None
    id: str | None = Field(None, description="Derived from symbol, strategy, timeframe, bar_time and type if absent")
    source: str | None = Field(None, description='"webhook" if absent')


class Outcome(BaseModel):
    """The signed return r of signal (epoch, seq) h bars after its bar; also the `signal_outcome` event.

    A signal emitted after its first horizon's bar closed is not scored: one item with `unscored` (the reason)
    and no `h` or `r`.
    """

    epoch: str
    seq: int
    id: str | None
    h: int | None = None
    r: float | None = None
    unscored: str | None = Field(None, description="Why this signal is not scored (late)")


class OutcomeAnnouncement(BaseModel):
    """A message on `<channel>:outcomes`: the worker stored outcome h of (epoch, seq); the relay reads it back."""

    epoch: str = Field(pattern=EPOCH_PATTERN)
    seq: int = Field(ge=1, le=MAX_SEQ)
    h: int = Field(ge=1)


class Welcome(BaseModel):
    """The `welcome` event, first after connect: the relay's epoch and last seq."""

    epoch: str
    seq: int = Field(ge=0)


class Resync(BaseModel):
    """The `resync` event: the client's cursor is of another epoch or unknown; drop it and restart from 0."""

    epoch: str


class Subscribe(BaseModel):
    """The `subscribe` event a client sends: the symbols it wants (null or absent: all)."""

    symbols: list[str] | str | None = Field(
        None, description=f"Symbols ({SYMBOL_PATTERN}) as a list or comma-separated; null for all"
    )


class SubscribeAck(BaseModel):
    """The acknowledgement of `subscribe`: the symbols now followed (null: all)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[str] | None


class SubscribeRefused(BaseModel):
    """The acknowledgement of a `subscribe` that cannot be used: what was wrong and what to do."""

    model_config = ConfigDict(extra="forbid")

    error: str


class WebhookHeaders(BaseModel):
    """The headers of every webhook delivery."""

    model_config = ConfigDict(populate_by_name=True)

    signature: str = Field(
        alias="Quantum-Signature",
        pattern=SIGNATURE_PATTERN,
        description='t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>',
    )
    idempotency_key: str = Field(
        alias="Idempotency-Key", pattern=IDEMPOTENCY_PATTERN, description="<epoch>:<seq> of the signal"
    )


# Every model the AsyncAPI document names, by its schema name.
MODELS: tuple[type[BaseModel], ...] = (
    Signal,
    IncomingSignal,
    Outcome,
    OutcomeAnnouncement,
    Welcome,
    Resync,
    Subscribe,
    SubscribeAck,
    SubscribeRefused,
    WebhookHeaders,
)
