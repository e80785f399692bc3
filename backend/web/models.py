"""The REST bodies and answers as pydantic models: what /api/openapi.json describes (docs/architecture.md, "REST")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """Every refusal: what was wrong and what to do."""

    error: str = Field(examples=["limit=0 is out of range (1..1000)"])


class Signal(BaseModel):
    """A signal of the contract as stored and relayed (docs/architecture.md, "Signal contract")."""

    model_config = ConfigDict(extra="allow")

    seq: int | None = Field(None, description="Position in the history of its epoch (numbered signals)")
    epoch: str | None = Field(None, description="The history this seq belongs to")
    type: Literal["BUY", "SELL"]
    price: float
    symbol: str | None = None
    timeframe: str | None = None
    strategy: str | None = None
    bar_time: str | None = Field(None, description="ISO-8601 UTC open time of the bar, with Z")
    reason: str | None = None
    indicators: dict[str, float | None] | None = Field(None, description="null where an indicator is undefined")
    id: str | None = Field(None, description="Stable id: a retry with the same id is not published again")
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


class SignalsPage(BaseModel):
    """GET /api/signals: the retained signals asked for, oldest first, and the epoch they belong to."""

    epoch: str
    signals: list[Signal]


class Candle(BaseModel):
    """One closed bar; time is its open time in epoch milliseconds."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Chart(BaseModel):
    """GET /api/candles: the kept bars of symbol × timeframe with each strategy's series (null before warm-up)."""

    symbol: str
    timeframe: str
    candles: list[Candle]
    indicators: dict[str, dict[str, list[float | None]]] = Field(description="strategy spec → series name → values")
    panes: dict[str, dict[str, str]] = Field(description='strategy spec → series name → "price" or its own pane')


class Tally(BaseModel):
    """Outcomes at one horizon: how many, the share that went the signal's way, the mean signed return."""

    n: int
    hit_rate: float | None
    mean_return: float | None


class StatsEntry(BaseModel):
    """The outcome counts of one strategy (of one symbol when asked), per horizon in bars."""

    model_config = ConfigDict(extra="allow")

    strategy: str
    source: str | None = Field(None, description="Outside signals' entries only: where they came from")
    symbol: str | None = None
    signals: int
    outcomes: dict[str, Tally]


class StatsPage(BaseModel):
    """GET /api/stats."""

    model_config = ConfigDict(extra="allow")

    epoch: str
    horizons: list[int]
    stats: list[StatsEntry]
    max_entries: int = Field(description="STATS_MAX_ENTRIES: at most this many entries are kept")
    not_counted: int = Field(description="Signals left out of the stats because the cap was reached")


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


class OutcomesPage(BaseModel):
    """GET /api/outcomes."""

    model_config = ConfigDict(extra="allow")

    epoch: str
    horizons: list[int]
    outcomes: list[Outcome]


def answers(*statuses: int) -> dict:
    """The `responses` of a route for the error STATUSES it may answer, each with ErrorBody.

    With "4XX" among them FastAPI lists no 422 of its own: query parameters are parsed by backend/web/params.py,
    whose refusals are 400s with the JSON error shape.
    """
    reasons = {
        400: "A parameter or the body cannot be used",
        401: "A token is required or wrong",
        403: "Refused by configuration",
        404: "Nothing kept for what was asked",
        408: "The body did not arrive in time",
        413: "The body is too large",
        429: "Over a rate limit (Retry-After says when to retry)",
        503: "Redis does not answer",
    }
    refusals = {status: {"model": ErrorBody, "description": reasons[status]} for status in statuses}
    return {**refusals, "4XX": {"model": ErrorBody, "description": "Refused: the error says what to change"}}
