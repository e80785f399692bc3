"""GET /api/candles, /api/stats and /api/outcomes: what the scan kept for charts and how signals fared, read from
Redis only (the worker writes them: docs/architecture.md, "Charts and outcomes")."""

from __future__ import annotations

import re

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from backend import charts, history
from backend.outcomes import read_outcomes, read_stats, stats_limits
from backend.web.auth import bearer_token, token_ok
from backend.web.ops import redis_down, redis_up
from backend.web.params import BadRequest, parse_int, parse_symbol

bp = Blueprint("charts_api", __name__, url_prefix="/api")

CANDLES_DEFAULT, CANDLES_MAX = 300, 1000
OUTCOMES_DEFAULT, OUTCOMES_MAX = 200, 1000
TIMEFRAME_RE = re.compile(r"[1-9][0-9]{0,3}[smhdwM]")
MAX_STRATEGY_CHARS = 512


def _error(status: int, message: str):
    return jsonify({"error": message}), status


@bp.before_request
def _authorize():
    """The same read tokens as GET /api/signals."""
    tokens = current_app.config["SETTINGS"].auth_tokens
    if tokens and not token_ok(bearer_token(request.headers.get("Authorization")), tokens):
        return _error(401, "unauthorized: send Authorization: Bearer <token>")
    return None


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return _error(400, str(exc))


@bp.errorhandler(redis.RedisError)
def _redis_error(exc: redis.RedisError):
    return _error(503, redis_down(exc))


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


def _horizons() -> list[int]:
    return list(current_app.config["SETTINGS"].outcome_horizons)


def _epoch(client: redis.Redis) -> str:
    epoch, _seq = history.cursor(client)
    return epoch or history.ensure_epoch(client)


@bp.get("/candles")
def candles():
    """The latest closed bars the scan kept for symbol × timeframe, with the strategies' series; ETag and 304."""
    symbol = parse_symbol(request.args.get("symbol"))
    if symbol is None:
        raise BadRequest("symbol is required, e.g. symbol=BTCUSDT")
    timeframe = _timeframe(request.args.get("timeframe"))
    limit = parse_int("limit", request.args.get("limit"), 1, CANDLES_MAX) or CANDLES_DEFAULT
    client = current_app.extensions["qs_redis"]
    try:
        tag = charts.etag(symbol, timeframe, limit, *charts.chart_version(client, symbol, timeframe))
        if request.if_none_match.contains(tag):
            response = Response(status=304)
        else:
            body = current_app.json.dumps(charts.read_chart(client, symbol, timeframe, limit))
            response = Response(body, mimetype="application/json")
    except charts.ChartNotFound as exc:
        return _error(404, str(exc))
    redis_up()
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-cache"  # revalidate every time: a new bar may have closed
    return response


@bp.get("/stats")
def stats():
    """Outcome counts per strategy (per symbol when asked) in the current epoch."""
    strategy = _strategy(request.args.get("strategy"))
    symbol = parse_symbol(request.args.get("symbol"))
    client = current_app.extensions["qs_redis"]
    epoch = _epoch(client)
    horizons = _horizons()
    entries = read_stats(client, epoch, horizons, strategy, symbol)
    limits = stats_limits(client, epoch, current_app.config["SETTINGS"].stats_max_entries)
    redis_up()
    return jsonify({"epoch": epoch, "horizons": horizons, "stats": entries, **limits})


@bp.get("/outcomes")
def outcomes():
    """Every known outcome of the latest `limit` signals (of symbol, or all)."""
    symbol = parse_symbol(request.args.get("symbol"))
    limit = parse_int("limit", request.args.get("limit"), 1, OUTCOMES_MAX) or OUTCOMES_DEFAULT
    client = current_app.extensions["qs_redis"]
    epoch = _epoch(client)
    horizons = _horizons()
    signals = history.recent(client, symbol=symbol, limit=limit)
    found = read_outcomes(client, [s for s in signals if s.get("epoch") == epoch], horizons)
    redis_up()
    return jsonify({"epoch": epoch, "horizons": horizons, "outcomes": found})
