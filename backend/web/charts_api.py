"""GET /api/candles, /api/stats and /api/outcomes: what the scan kept for charts and how signals fared, read from
Redis only (the worker writes them: docs/architecture.md, "Charts and outcomes")."""

from __future__ import annotations

import re
from typing import Any

import redis
from fastapi import APIRouter, Depends, Query, Request, Response

from backend import charts, history
from backend.outcomes import read_outcomes, read_stats, stats_limits
from backend.web.api import json_body
from backend.web.auth import require_read_token
from backend.web.errors import ApiError, JsonErrorRoute
from backend.web.models import Chart, OutcomesPage, StatsPage, answers
from backend.web.ops import redis_up
from backend.web.params import BadRequest, parse_int, parse_symbol
from backend.web.rate_limits import limit_address
from backend.web.state import WebState, get_state

router = APIRouter(
    prefix="/api",
    tags=["charts and outcomes"],
    route_class=JsonErrorRoute,
    dependencies=[Depends(limit_address), Depends(require_read_token)],
    responses=answers(400, 401, 429, 503),
)

CANDLES_DEFAULT, CANDLES_MAX = 300, 1000
OUTCOMES_DEFAULT, OUTCOMES_MAX = 200, 1000
TIMEFRAME_RE = re.compile(r"[1-9][0-9]{0,3}[smhdwM]")
MAX_STRATEGY_CHARS = 512
SYMBOL_QUERY = Query(None, description="A symbol such as BTCUSDT")


def _timeframe(value: str | None) -> str:
    if not value:
        raise BadRequest("timeframe is required, e.g. timeframe=1m")
    if not TIMEFRAME_RE.fullmatch(value):
        raise BadRequest(f"timeframe={value[:40]!r} is not a timeframe such as 1m, 15m, 1h or 1d")
    return value


def _strategy(value: str | None) -> str | None:
    if value and len(value) > MAX_STRATEGY_CHARS:
        raise BadRequest(f"strategy is longer than {MAX_STRATEGY_CHARS} characters")
    return value or None


def _epoch(client: redis.Redis) -> str:
    epoch, _seq = history.cursor(client)
    return epoch or history.ensure_epoch(client)


def etag_matches(header: str | None, tag: str) -> bool:
    """True when an If-None-Match HEADER names TAG (weakly, as RFC 9110 compares for GET) or is `*`."""
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip().removeprefix("W/")
        if candidate == "*" or candidate == f'"{tag}"':
            return True
    return False


@router.get(
    "/candles",
    response_class=Response,
    responses={
        200: {"model": Chart, "content": {"application/json": {}}},
        304: {"description": "Unchanged since the ETag sent in If-None-Match"},
        **answers(404),
    },
)
def candles(
    request: Request,
    symbol: str | None = SYMBOL_QUERY,
    timeframe: str | None = Query(None, description="A timeframe the scan covers, e.g. 1m, 15m, 1h"),
    limit: str | None = Query(None, description=f"How many of the latest bars (1..{CANDLES_MAX}, {CANDLES_DEFAULT})"),
    state: WebState = Depends(get_state),
) -> Response:
    """The latest closed bars the scan kept for symbol × timeframe, with the strategies' series; ETag and 304."""
    wanted = parse_symbol(symbol)
    if wanted is None:
        raise BadRequest("symbol is required, e.g. symbol=BTCUSDT")
    frame = _timeframe(timeframe)
    count = parse_int("limit", limit, 1, CANDLES_MAX) or CANDLES_DEFAULT
    client = state.redis
    try:
        tag = charts.etag(wanted, frame, count, *charts.chart_version(client, wanted, frame))
        if etag_matches(request.headers.get("If-None-Match"), tag):
            response = Response(status_code=304)
        else:
            response = Response(
                json_body(charts.read_chart(client, wanted, frame, count)), media_type="application/json"
            )
    except charts.ChartNotFound as exc:
        raise ApiError(404, str(exc)) from None
    redis_up(state)
    response.headers["ETag"] = f'"{tag}"'
    response.headers["Cache-Control"] = "no-cache"  # revalidate every time: a new bar may have closed
    return response


@router.get("/stats", response_model=StatsPage, response_model_exclude_unset=True)
def stats(
    strategy: str | None = Query(None, description="Only this strategy spec"),
    symbol: str | None = SYMBOL_QUERY,
    state: WebState = Depends(get_state),
) -> dict[str, Any]:
    """Outcome counts per strategy (per symbol when asked) in the current epoch."""
    wanted_strategy = _strategy(strategy)
    wanted = parse_symbol(symbol)
    epoch = _epoch(state.redis)
    horizons = list(state.settings.outcome_horizons)
    entries = read_stats(state.redis, epoch, horizons, wanted_strategy, wanted)
    limits = stats_limits(state.redis, epoch, state.settings.stats_max_entries)
    redis_up(state)
    return {"epoch": epoch, "horizons": horizons, "stats": entries, **limits}


@router.get("/outcomes", response_model=OutcomesPage, response_model_exclude_unset=True)
def outcomes(
    symbol: str | None = SYMBOL_QUERY,
    limit: str | None = Query(
        None, description=f"How many of the latest signals (1..{OUTCOMES_MAX}, {OUTCOMES_DEFAULT})"
    ),
    state: WebState = Depends(get_state),
) -> dict[str, Any]:
    """Every known outcome of the latest `limit` signals (of symbol, or all)."""
    wanted = parse_symbol(symbol)
    count = parse_int("limit", limit, 1, OUTCOMES_MAX) or OUTCOMES_DEFAULT
    epoch = _epoch(state.redis)
    horizons = list(state.settings.outcome_horizons)
    signals = history.recent(state.redis, symbol=wanted, limit=count)
    found = read_outcomes(state.redis, [s for s in signals if s.get("epoch") == epoch], horizons)
    redis_up(state)
    return {"epoch": epoch, "horizons": horizons, "outcomes": found}
