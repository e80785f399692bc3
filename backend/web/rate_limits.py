"""HTTP rate limits: per client address on /api/* and the dashboard (never on probes, static files or Socket.IO),
and per publish token on the HTTP intake."""

from __future__ import annotations

import hashlib
import math
import time

import redis
from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindowRateLimiter
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from backend.redis_client import strip_tls_query
from backend.settings import Settings
from backend.signal_schema import PUBLISH_LIMIT_PREFIX
from backend.web.errors import ApiError
from backend.web.state import get_state


def retry_after(reset_time: float) -> int:
    """Whole seconds until RESET_TIME, rounded up and at least 1 (a 0 would invite an instant retry)."""
    return max(1, math.ceil(reset_time - time.time()))


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
                return item, retry_after(self.limiter.get_window_stats(item, key).reset_time)
        return None


class AddressLimit:
    """HTTP_RATE_LIMIT per client address over / and /api/* together (moving window, in this process's memory)."""

    def __init__(self, limit: str):
        """Count against LIMIT (one or more `N/period`, ';'-separated)."""
        self.items: list[RateLimitItem] = parse_many(limit)
        # In memory, per process: the limit guards this process's CPU, so this process's own count is the
        # right one, and it costs no Redis round trip per request. A moving window cannot be doubled by a
        # burst straddling the boundary of two fixed windows.
        self.limiter = AsyncMovingWindowRateLimiter(MemoryStorage())

    async def hit(self, address: str) -> tuple[RateLimitItem, int] | None:
        """Count one request from ADDRESS: None within the limit, else (the limit exceeded, seconds to wait)."""
        for item in self.items:
            if not await self.limiter.hit(item, address):
                return item, retry_after((await self.limiter.get_window_stats(item, address)).reset_time)
        return None


async def limit_address(request: Request) -> None:
    """FastAPI dependency of the / and /api/* routers: refuse (429) an address over HTTP_RATE_LIMIT."""
    # One limiter per app, made at its first request: the routers are shared by every app of the process.
    limit = getattr(request.app.state, "address_limit", None)
    if limit is None:
        limit = request.app.state.address_limit = AddressLimit(get_state(request).settings.http_rate_limit)
    over = await limit.hit(request.client.host if request.client else "")
    if over is not None:
        item, retry = over
        raise ApiError(
            429,
            f"rate limit exceeded: {item} per client address; retry after {retry} s and send fewer requests "
            "(the server's HTTP_RATE_LIMIT)",
            {"Retry-After": str(retry)},
        )
