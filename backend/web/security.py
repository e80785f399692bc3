"""Browser hardening of every response, and ALLOWED_HOSTS checked before anything else runs."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# lightweight-charts adds this <style> for its TradingView attribution logo (its licence asks for the
# attribution); allowing exactly this text by hash keeps 'unsafe-inline' out of style-src.
CHART_LOGO_STYLE_HASH = "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' {CHART_LOGO_STYLE_HASH}",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

RAW_SECURITY_HEADERS = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

# Orchestrators and scrapers call these by pod IP, not by the public name; they reveal nothing secret.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_HOST_SHOWN = 253  # the longest DNS name: the error echoes no more of a hostile header


def split_host(host: str) -> str:
    """The host name of a Host header: lower case, no port, no trailing dot ('' when malformed)."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal, maybe with a port after the bracket
        end = host.find("]")
        return host[: end + 1] if end != -1 else ""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.removesuffix(".")


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Django's rule: '*' is any host, '.example.com' is it and its subdomains, else an exact match."""
    if not host:
        return False
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:]):
            return True
    return False


class HostCheck:
    """ASGI middleware: 400 for a Host not in ALLOWED_HOSTS (defeats DNS rebinding); security headers on all.

    Outermost, so it wraps whatever is inside, Socket.IO included: /socket.io/ is checked, and its answers
    (made outside FastAPI) get the headers too.
    """

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        """Wrap APP; ALLOWED holds lower-case host patterns (empty: any host)."""
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass allowed requests through; answer the others here, before any of the app runs."""
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        raw = header(scope, b"host")
        host = split_host(raw)
        if not self.allowed or scope["path"] in PROBE_PATHS or host_allowed(host, self.allowed):
            return await self.app(scope, receive, with_security_headers(send))
        shown = (host or raw)[:MAX_HOST_SHOWN]
        body = json.dumps({"error": f"host {shown!r} is not in ALLOWED_HOSTS"}).encode()
        await respond(scope, send, 400, [(b"content-type", b"application/json")], body)


def header(scope: Scope, name: bytes) -> str:
    """The first NAME header of SCOPE as text ('' when absent)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


async def respond(scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Answer STATUS with BODY (and the security headers) on an HTTP request or a websocket handshake."""
    headers = [*headers, (b"content-length", str(len(body)).encode()), *RAW_SECURITY_HEADERS]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # a server without the denial-response extension answers a refused handshake with 403
        await send({"type": "websocket.close", "code": 1008})


def with_security_headers(send: Send) -> Send:
    """SEND adding whichever security headers a response (or a websocket's denial) lacks."""

    async def send_with_headers(message: Message) -> None:
        """Complete the headers of a response start, then send it."""
        if message["type"] in ("http.response.start", "websocket.http.response.start"):
            present = {name.lower() for name, _ in message.get("headers", [])}
            missing = [(k, v) for k, v in RAW_SECURITY_HEADERS if k not in present]
            if missing:
                message = {**message, "headers": [*message.get("headers", []), *missing]}
        await send(message)

    return send_with_headers
