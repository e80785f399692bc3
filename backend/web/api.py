"""The HTTP API under /api/: GET /api/signals, the retained history, behind a small cache of bodies; POST
/api/signals, the intake of outside signals (TradingView alerts, other services) through the publisher."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from backend import history
from backend.intake import normalize_signal
from backend.publisher import SignalTooLarge
from backend.signal_schema import InvalidSignal, decode_json
from backend.web.auth import bearer_token, require_read_token, token_ok
from backend.web.errors import ApiError, JsonErrorRoute
from backend.web.models import IncomingSignal, Signal, SignalsPage, answers
from backend.web.ops import redis_up
from backend.web.params import MAX_STREAM_SEQ, parse_limit, parse_since, parse_symbol
from backend.web.rate_limits import limit_address
from backend.web.state import WebState, get_state

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["signals"], route_class=JsonErrorRoute, dependencies=[Depends(limit_address)])

CACHE_ENTRIES = 256
# (epoch, seq, since, symbol, limit): an answer stays right until the history's cursor moves.
CacheKey = tuple[str | None, int, int, str | None, int]
CACHE_BYTES = 64 * 1024 * 1024  # a 1,000-signal body is ~0.5 MB; the count cap alone could hold 100+ MB


class BodyCache:
    """A small LRU of /api/signals bodies, bounded by entries and bytes."""

    def __init__(self, max_entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES):
        """An empty cache."""
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: OrderedDict[CacheKey, bytes] = OrderedDict()
        self.size = 0

    def get(self, key: CacheKey) -> bytes | None:
        """The body stored under KEY (now the most recently used), or None."""
        body = self.entries.get(key)
        if body is not None:
            self.entries.move_to_end(key)
        return body

    def put(self, key: CacheKey, body: bytes) -> None:
        """Store BODY under KEY, evicting the least recently used beyond the caps."""
        if len(body) > self.max_bytes // 4:
            return
        self.size += len(body) - len(self.entries.pop(key, b""))
        self.entries[key] = body
        while len(self.entries) > self.max_entries or self.size > self.max_bytes:
            self.size -= len(self.entries.popitem(last=False)[1])


def json_body(value: object) -> bytes:
    """VALUE as the compact JSON the API answers."""
    return json.dumps(value, separators=(",", ":")).encode()


@router.get(
    "/signals",
    response_class=Response,
    responses={200: {"model": SignalsPage, "content": {"application/json": {}}}, **answers(400, 401, 429, 503)},
    dependencies=[Depends(require_read_token)],
)
def list_signals(
    since: str | None = Query(None, description="Only signals with a greater seq (0..2**64-1)"),
    limit: str | None = Query(None, description="How many of the newest to answer (1..1000, default 100)"),
    symbol: str | None = Query(None, description="Only this symbol's signals, e.g. BTCUSDT"),
    state: WebState = Depends(get_state),
) -> Response:
    """Retained signals with seq > since, the newest `limit`, oldest first."""
    since_seq = parse_since(since, MAX_STREAM_SEQ) or 0
    count = parse_limit(limit)
    wanted = parse_symbol(symbol)
    client = state.redis
    # Keyed by the history's cursor: every new signal moves seq (a new epoch replaces the history), so an
    # entry is exactly what Redis would answer until then. The threadpool runs several of these at once:
    # BodyCache's few dict steps are not atomic, but a lost update only costs a later miss.
    cache = state.signals_cache
    epoch, seq = history.cursor(client)
    key = (epoch, seq, since_seq, wanted, count)
    body = cache.get(key) if cache is not None and epoch else None
    if body is None:
        epoch = epoch or history.ensure_epoch(client)
        signals = history.recent(client, since=since_seq, symbol=wanted, limit=count)
        body = json_body({"epoch": epoch, "signals": signals})
        if cache is not None and key[0]:
            cache.put(key, body)
    redis_up(state)
    return Response(body, media_type="application/json")


INTAKE_BODY = {
    "required": True,
    "description": "One signal as JSON; text/plain holding JSON is read the same (TradingView's webhooks).",
    "content": {
        "application/json": {"schema": IncomingSignal.model_json_schema()},
        "text/plain": {"schema": {"type": "string"}, "example": '{"type": "buy", "price": "60000.5"}'},
    },
}


@router.post(
    "/signals",
    status_code=201,
    response_class=Response,
    responses={
        201: {"model": Signal, "description": "Published: the stored signal", "content": {"application/json": {}}},
        200: {"model": Signal, "description": "An id published before: the stored signal, nothing published"},
        **answers(400, 401, 403, 408, 413, 429, 503),
    },
    openapi_extra={"requestBody": INTAKE_BODY},
)
async def publish_signal(
    request: Request,
    token: str | None = Query(None, description="The publish token, for senders that cannot set headers"),
    state: WebState = Depends(get_state),
) -> Response:
    """Publish one outside signal: 201 with the stored signal, 200 with the earlier one for an id already published."""
    settings = state.settings
    if not settings.publish_tokens:
        raise ApiError(403, "publishing over HTTP is disabled: set SIGNALS_PUBLISH_TOKEN")
    # ?token= because TradingView's webhooks cannot set headers. No URL is logged (uvicorn's access log is off
    # in server.py; the log filter masks token= in any line), so the token stays out of the logs.
    token = bearer_token(request.headers.get("Authorization")) or token
    if token is None or not token_ok(token, settings.publish_tokens):
        raise ApiError(
            401, "unauthorized: send Authorization: Bearer <token> or ?token=<token> (SIGNALS_PUBLISH_TOKEN)"
        )
    over = await run_in_threadpool(state.publish_limit.hit, token)
    if over is not None:
        limit, retry = over
        message = f"rate limit exceeded: {limit} per publish token; retry after {retry} s (PUBLISH_RATE_LIMIT)"
        raise ApiError(429, message, {"Retry-After": str(retry)})
    # Read whole and bounded already: ConnectionLimits refused a larger body unread, or one too slow (408).
    raw = await request.body()
    if len(raw) > settings.max_signal_bytes:
        raise ApiError(413, f"body of {len(raw)} bytes exceeds MAX_SIGNAL_BYTES={settings.max_signal_bytes}")
    try:
        signal = normalize_signal(decode_json(raw, "body"), default_source="webhook")
        stored, created = await run_in_threadpool(state.publisher.publish, signal)
    except SignalTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except InvalidSignal as exc:
        raise ApiError(400, str(exc)) from None
    redis_up(state)
    log.info("HTTP intake: %s seq %d (%s)", "new" if created else "retry of", stored["seq"], stored.get("id", "no id"))
    return Response(json_body(stored), status_code=201 if created else 200, media_type="application/json")
