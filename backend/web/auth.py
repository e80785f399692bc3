"""Client authentication: the shared tokens of SIGNALS_AUTH_TOKEN, checked at both doors (Socket.IO and HTTP)."""

from __future__ import annotations

import hmac

from fastapi import Request

from backend.web.errors import ApiError
from backend.web.state import get_state

BEARER = "Bearer "


def token_ok(presented: object, tokens: tuple[str, ...]) -> bool:
    """True when no token is configured or PRESENTED matches one (constant-time)."""
    if not tokens:
        return True
    if not isinstance(presented, str) or not presented:
        return False
    # surrogatepass: a lone surrogate in a stranger's token is a wrong token, not an encoding crash
    raw = presented.encode("utf-8", "surrogatepass")
    matches = [hmac.compare_digest(raw, token.encode()) for token in tokens]
    return any(matches)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` HEADER, or None."""
    if header and header.startswith(BEARER):
        return header[len(BEARER) :]
    return None


async def require_read_token(request: Request) -> None:
    """FastAPI dependency: refuse (401) a read without one of SIGNALS_AUTH_TOKEN's tokens, when any is set."""
    tokens = get_state(request).settings.auth_tokens
    if tokens and not token_ok(bearer_token(request.headers.get("Authorization")), tokens):
        raise ApiError(401, "unauthorized: send Authorization: Bearer <token>")
