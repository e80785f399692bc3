"""The REST bodies and answers as pydantic models: what /api/openapi.json describes (docs/architecture.md, "REST")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.contract import IncomingSignal, Outcome, Signal

__all__ = ["IncomingSignal", "Outcome", "Signal"]  # the contract's, named here for the routes


class ErrorBody(BaseModel):
    """Every refusal: what was wrong and what to do."""

    error: str = Field(examples=["limit=0 is out of range (1..1000)"])


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


class OutcomesPage(BaseModel):
    """GET /api/outcomes."""

    model_config = ConfigDict(extra="allow")

    epoch: str
    horizons: list[int]
    outcomes: list[Outcome]


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
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
    refusals: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": reasons[status]} for status in statuses
    }
    return {**refusals, "4XX": {"model": ErrorBody, "description": "Refused: the error says what to change"}}
