"""HTTP endpoints: /api/signals, /healthz, /readyz, /metrics and the dashboard at /."""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict

import redis
from flask import Blueprint, Response, current_app, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend import history
from backend.signal_schema import LAST_SCAN_KEY
from backend.web.clients import token_ok
from backend.web.relay import HEARTBEAT_STALE_S

log = logging.getLogger(__name__)
bp = Blueprint("http_api", __name__)

MAX_LIMIT = 1000
MAX_SEQ = 2**64 - 1  # a stream id's ceiling: a larger cursor is the client's error, not Redis's
CACHE_ENTRIES = 256
CACHE_BYTES = 64 * 1024 * 1024  # a 1,000-signal body is ~0.5 MB; the count cap alone could hold 100+ MB


class BodyCache:
    """A small LRU of /api/signals bodies, bounded by entries and bytes."""

    def __init__(self, max_entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES):
        """An empty cache."""
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: OrderedDict[tuple, bytes] = OrderedDict()
        self.size = 0

    def get(self, key: tuple) -> bytes | None:
        """The body stored under KEY (now the most recently used), or None."""
        body = self.entries.get(key)
        if body is not None:
            self.entries.move_to_end(key)
        return body

    def put(self, key: tuple, body: bytes) -> None:
        """Store BODY under KEY, evicting the least recently used beyond the caps."""
        if len(body) > self.max_bytes // 4:
            return
        self.size += len(body) - len(self.entries.pop(key, b""))
        self.entries[key] = body
        while len(self.entries) > self.max_entries or self.size > self.max_bytes:
            self.size -= len(self.entries.popitem(last=False)[1])


@bp.record_once
def _setup(state) -> None:
    """Give the app its /api/signals cache and its memory of Redis's state."""
    state.app.extensions["qs_signals_cache"] = BodyCache()
    state.app.extensions["qs_redis_error"] = {"last": None}


def _error(status: int, message: str):
    """A JSON error response."""
    return jsonify({"error": message}), status


def redis_down(exc: Exception) -> str:
    """The public reason for EXC (its type only: messages name hosts); log the full error once per change."""
    state = current_app.extensions["qs_redis_error"]
    full = f"{type(exc).__name__}: {exc}"
    if state["last"] != full:
        state["last"] = full
        log.warning("Redis unavailable: %s", full)
    return f"Redis unavailable ({type(exc).__name__})"


def redis_up() -> None:
    """Note that Redis answers again, logging the recovery once."""
    state = current_app.extensions["qs_redis_error"]
    if state["last"] is not None:
        state["last"] = None
        log.info("Redis answers again")


def _error_type(detail: str | None) -> str:
    """The exception type at the head of a 'Type: message' DETAIL, never the message (it may name hosts)."""
    head = (detail or "starting").split(":", 1)[0]
    return head if re.fullmatch(r"\w{1,64}", head) else "error"


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
    # Keyed by the history's cursor: every new signal moves seq (a new epoch replaces the history), so an
    # entry is exactly what Redis would answer until then.
    cache = current_app.extensions["qs_signals_cache"] if current_app.config.get("SIGNALS_CACHE", True) else None
    try:
        epoch, seq = history.cursor(client)
        key = (epoch, seq, since, symbol, limit)
        body = cache.get(key) if cache is not None and epoch else None
        if body is None:
            epoch = epoch or history.ensure_epoch(client)
            signals = history.recent(client, since=since, symbol=symbol, limit=limit)
            body = current_app.json.dumps({"epoch": epoch, "signals": signals}).encode()
            if cache is not None and key[0]:
                cache.put(key, body)
    except redis.RedisError as exc:
        return _error(503, redis_down(exc))
    redis_up()
    return Response(body, mimetype="application/json")


@bp.get("/healthz")
def healthz():
    """200 while the process serves."""
    return jsonify({"status": "ok"})


def relay_state(relay) -> str:
    """The relay as readiness sees it: a loop that stopped beating is stalled, whatever it last said."""
    if not relay.alive():
        return f"stalled (no heartbeat for over {HEARTBEAT_STALE_S:g} s)"
    return "subscribed" if relay.subscribed else "not subscribed"


@bp.get("/readyz")
def readyz():
    """200 when Redis answers and the relay is subscribed; 503 with the reason otherwise."""
    relay = current_app.extensions["qs_relay"]
    body = {"relay": relay_state(relay), "epoch": relay.epoch, "seq": relay.last_seq}
    reasons = []
    try:
        client = current_app.extensions["qs_redis"]
        client.ping()
        body["redis"] = "ok"
        last_scan = client.get(LAST_SCAN_KEY)
        body["last_scan_age_s"] = round(time.time() - float(last_scan), 1) if last_scan else None
        redis_up()
    except redis.RedisError as exc:
        reason = redis_down(exc)
        body["redis"] = reason.removeprefix("Redis ")
        reasons.append(reason)
    if not relay.ready():
        reasons.append(f"relay {relay_state(relay)} ({_error_type(relay.last_error)})")
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
