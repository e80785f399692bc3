"""The HTTP API under /api/: GET /api/signals, the retained history, behind a small cache of bodies; POST
/api/signals, the intake of outside signals (TradingView alerts, other services) through the publisher."""

from __future__ import annotations

import logging
from collections import OrderedDict

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from backend import history
from backend.intake import normalize_signal
from backend.publisher import Publisher, SignalTooLarge
from backend.signal_schema import InvalidSignal, decode_json
from backend.web.auth import bearer_token, token_ok
from backend.web.ops import redis_down, redis_up
from backend.web.params import MAX_STREAM_SEQ, BadRequest, parse_limit, parse_since, parse_symbol

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")

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
    """Give the app its /api/signals cache and the intake's publisher."""
    state.app.extensions["qs_signals_cache"] = BodyCache()
    publisher = Publisher.from_settings(state.app.config["SETTINGS"], state.app.extensions["qs_redis"])
    state.app.extensions["qs_publisher"] = publisher


def _error(status: int, message: str):
    """A JSON error response."""
    return jsonify({"error": message}), status


@bp.get("/signals")
def list_signals():
    """Retained signals with seq > since, the newest `limit`, oldest first."""
    tokens = current_app.config["SETTINGS"].auth_tokens
    if tokens and not token_ok(bearer_token(request.headers.get("Authorization")), tokens):
        return _error(401, "unauthorized: send Authorization: Bearer <token>")
    try:
        since = parse_since(request.args.get("since"), MAX_STREAM_SEQ) or 0
        limit = parse_limit(request.args.get("limit"))
        symbol = parse_symbol(request.args.get("symbol"))
    except BadRequest as exc:
        return _error(400, str(exc))
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


@bp.post("/signals")
def publish_signal():
    """Publish one outside signal: 201 with the stored signal, 200 with the earlier one for an id already published."""
    settings = current_app.config["SETTINGS"]
    if not settings.publish_tokens:
        return _error(403, "publishing over HTTP is disabled: set SIGNALS_PUBLISH_TOKEN")
    # ?token= because TradingView's webhooks cannot set headers. No URL is logged (eventlet's access log is off in
    # server.py; the log filter masks token= in any line), so the token stays out of the logs.
    token = bearer_token(request.headers.get("Authorization")) or request.args.get("token")
    if not token_ok(token, settings.publish_tokens):
        return _error(401, "unauthorized: send Authorization: Bearer <token> or ?token=<token> (SIGNALS_PUBLISH_TOKEN)")
    try:
        over = current_app.extensions["qs_publish_limit"].hit(token)
    except redis.RedisError as exc:
        return _error(503, redis_down(exc))
    if over is not None:
        limit, retry = over
        message = f"rate limit exceeded: {limit} per publish token; retry after {retry} s (PUBLISH_RATE_LIMIT)"
        return jsonify({"error": message}), 429, {"Retry-After": str(retry)}
    raw = request.get_data(cache=False)
    if len(raw) > settings.max_signal_bytes:
        return _error(413, f"body of {len(raw)} bytes exceeds MAX_SIGNAL_BYTES={settings.max_signal_bytes}")
    try:
        signal = normalize_signal(decode_json(raw, "body"), default_source="webhook")
        stored, created = current_app.extensions["qs_publisher"].publish(signal)
    except SignalTooLarge as exc:
        return _error(413, str(exc))
    except InvalidSignal as exc:
        return _error(400, str(exc))
    except redis.RedisError as exc:
        return _error(503, redis_down(exc))
    redis_up()
    log.info("HTTP intake: %s seq %d (%s)", "new" if created else "retry of", stored["seq"], stored.get("id", "no id"))
    return jsonify(stored), 201 if created else 200
