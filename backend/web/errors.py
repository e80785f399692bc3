"""REST refusals in one shape, `{"error": "…"}` with today's status codes, whatever part of a route refuses."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import redis
from fastapi import Request, Response
from fastapi.routing import APIRoute

from backend.web.ops import redis_down
from backend.web.params import BadRequest
from backend.web.state import get_state


class ApiError(Exception):
    """A refusal a route or one of its dependencies raises: STATUS, the message, and headers such as Retry-After."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        """The refusal STATUS with MESSAGE (what was wrong and what to do)."""
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON error answer."""
    body = json.dumps({"error": message}).encode()
    return Response(body, status_code=status, headers=dict(headers or {}), media_type="application/json")


class JsonErrorRoute(APIRoute):
    """A route answering ApiError, BadRequest (400) and Redis errors (503) as JSON errors, dependencies included.

    FastAPI would answer an exception raised in a dependency with its own `{"detail": …}` (or a 500); the
    contract's shape is `{"error": …}` (docs/architecture.md, "REST").
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The library's handler, with the project's refusals turned into answers."""
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            """Run the route; answer a refusal it raised."""
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc.status, exc.message, exc.headers)
            except BadRequest as exc:
                return error_response(400, str(exc))
            except redis.RedisError as exc:
                return error_response(503, redis_down(get_state(request), exc))

        return route_handler
