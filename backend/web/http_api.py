"""HTTP endpoints: /api/signals, /healthz, /readyz, /metrics and the dashboard at /."""

from __future__ import annotations

import time

import redis
from flask import Blueprint, Response, current_app, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend import history
from backend.signal_schema import LAST_SCAN_KEY
from backend.web.clients import token_ok

bp = Blueprint("http_api", __name__)

MAX_LIMIT = 1000
MAX_SEQ = 2**64 - 1  # a stream id's ceiling: a larger cursor is the client's error, not Redis's


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _int_arg(name: str, default: int | None, lo: int, hi: int | None = None):
    raw = request.args.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range ({lo}..{hi if hi is not None else '∞'})")
    return value


@bp.get("/api/signals")
def list_signals():
    """Retained signals with seq > since, the newest `limit`, oldest first."""
    tokens = current_app.config["SETTINGS"].auth_tokens
    bearer = request.headers.get("Authorization", "")
    if tokens and not (bearer.startswith("Bearer ") and token_ok(bearer[7:], tokens)):
        return _error(401, "unauthorized: send Authorization: Bearer <token>")
    try:
        since = _int_arg("since", 0, 0, MAX_SEQ)
        limit = _int_arg("limit", 100, 1, MAX_LIMIT)
    except ValueError as exc:
        return _error(400, str(exc))
    symbol = request.args.get("symbol") or None
    if symbol is not None:
        symbol = symbol.upper()
        if not symbol.isalnum() or len(symbol) > 32:
            return _error(400, f"symbol={symbol!r} is not a symbol such as BTCUSDT")
    client = current_app.extensions["qs_redis"]
    try:
        epoch = history.ensure_epoch(client)
        signals = history.recent(client, since=since, symbol=symbol, limit=limit)
    except redis.RedisError as exc:
        return _error(503, f"Redis unavailable: {exc}")
    return jsonify({"epoch": epoch, "signals": signals})


@bp.get("/healthz")
def healthz():
    """200 while the process serves."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when Redis answers and the relay is subscribed; 503 with the reason otherwise."""
    relay = current_app.extensions["qs_relay"]
    body = {"relay": "subscribed" if relay.subscribed else "not subscribed", "epoch": relay.epoch,
            "seq": relay.last_seq}
    reasons = []
    try:
        client = current_app.extensions["qs_redis"]
        client.ping()
        body["redis"] = "ok"
        last_scan = client.get(LAST_SCAN_KEY)
        body["last_scan_age_s"] = round(time.time() - float(last_scan), 1) if last_scan else None
    except redis.RedisError as exc:
        body["redis"] = f"unavailable: {exc}"
        reasons.append(f"Redis unavailable: {exc}")
    if not relay.subscribed:
        reasons.append(f"relay not subscribed ({relay.last_error or 'starting'})")
    body["status"] = "ready" if not reasons else "not ready"
    if reasons:
        body["reason"] = "; ".join(reasons)
    return jsonify(body), 200 if not reasons else 503


@bp.get("/metrics")
def metrics():
    """Prometheus text."""
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/")
def dashboard():
    """The live dashboard."""
    return render_template("index.html")
