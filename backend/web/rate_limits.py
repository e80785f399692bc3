"""HTTP rate limit per client address on /api/* and the dashboard; never on probes or Socket.IO."""

from __future__ import annotations

import math
import time

from flask import Flask, jsonify, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address

from backend.settings import Settings


def _not_limited() -> bool:
    """True for every path but / and /api/*: orchestrators' probes and /metrics must never be throttled."""
    return not (request.path == "/" or request.path.startswith("/api/"))


def init_app(app: Flask, settings: Settings) -> Limiter:
    """Limit each client address to settings.http_rate_limit over / and /api/* together; JSON 429s."""
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
