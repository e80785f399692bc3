"""HTTP rate limits: per client address on /api/* and the dashboard (never on probes or Socket.IO), and per
publish token on the HTTP intake."""

from __future__ import annotations

import hashlib
import math
import time

import redis
from flask import Flask, jsonify, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from backend.redis_client import strip_tls_query
from backend.settings import Settings
from backend.signal_schema import PUBLISH_LIMIT_PREFIX


class PublishLimit:
    """PUBLISH_RATE_LIMIT per publish token (moving window), counted in Redis: one count for all web processes."""

    def __init__(self, settings: Settings, client: redis.Redis):
        """Count on CLIENT's connections (so REDIS_URL's TLS options apply) under PUBLISH_LIMIT_PREFIX."""
        self.items: list[RateLimitItem] = parse_many(settings.publish_rate_limit)
        storage = RedisStorage(
            strip_tls_query(settings.redis_url), connection_pool=client.connection_pool, key_prefix=PUBLISH_LIMIT_PREFIX
        )
        self.limiter = MovingWindowRateLimiter(storage)

    def hit(self, token: str) -> tuple[RateLimitItem, int] | None:
        """Count one publish with TOKEN: None within the limit, else (the limit exceeded, seconds to wait)."""
        # A hash, not the token: Redis keys are listed by tools and operators, and tokens are secrets.
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        for item in self.items:
            if not self.limiter.hit(item, key):
                reset = self.limiter.get_window_stats(item, key).reset_time
                return item, max(1, math.ceil(reset - time.time()))
        return None


def _not_limited() -> bool:
    """True for every path but / and /api/*: orchestrators' probes and /metrics must never be throttled."""
    return not (request.path == "/" or request.path.startswith("/api/"))


def init_app(app: Flask, settings: Settings) -> Limiter:
    """Limit each address to HTTP_RATE_LIMIT over / and /api/* together (JSON 429s); keep the intake's PublishLimit."""
    app.extensions["qs_publish_limit"] = PublishLimit(settings, app.extensions["qs_redis"])
    limiter = Limiter(
        key_func=get_remote_address,
        application_limits=[settings.http_rate_limit],
        application_limits_exempt_when=_not_limited,
        # In memory, per process: the limit guards this process's CPU, so this process's own count is the
        # right one, and it costs no Redis round trip per request.
        storage_uri="memory://",
        # A moving window cannot be doubled by a burst straddling the boundary of two fixed windows.
        strategy="moving-window",
        # Retry-After is set below, rounded up: the extension's own rounds down to 0 under one second.
        headers_enabled=False,
    )
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(exc: RateLimitExceeded):
        """429 saying the limit, when to retry and what to do."""
        current = limiter.current_limit
        retry = max(1, math.ceil(current.window[0] - time.time())) if current else 1
        body = {
            "error": f"rate limit exceeded: {exc.description} per client address; retry after {retry} s "
            f"and send fewer requests (the server's HTTP_RATE_LIMIT)"
        }
        return jsonify(body), 429, {"Retry-After": str(retry)}

    return limiter
