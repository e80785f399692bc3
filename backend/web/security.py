"""Browser hardening of every response, and ALLOWED_HOSTS checked before anything else runs."""

from __future__ import annotations

import json

from flask import Flask

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

# Orchestrators and scrapers call these by pod IP, not by the public name; they reveal nothing secret.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_HOST_SHOWN = 253  # the longest DNS name: the error echoes no more of a hostile header


def init_app(app: Flask) -> None:
    """Wrap the whole WSGI app: the ALLOWED_HOSTS check, and the security headers on every response."""
    # Wraps whatever is there, Socket.IO included: /socket.io/ is checked, and its answers (made outside
    # Flask, so after_request never sees them) get the headers too.
    app.wsgi_app = HostCheck(app.wsgi_app, app.config["SETTINGS"].allowed_hosts)


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
    """WSGI middleware: 400 for a Host not in ALLOWED_HOSTS (defeats DNS rebinding); security headers on all."""

    def __init__(self, app, allowed: tuple[str, ...]):
        """Wrap APP; ALLOWED holds lower-case host patterns (empty: any host)."""
        self.app, self.allowed = app, allowed

    def __call__(self, environ, start_response):
        """Pass allowed requests through; answer the others here, before any of the app runs."""
        raw = environ.get("HTTP_HOST") or ""
        host = split_host(raw)
        if not self.allowed or environ.get("PATH_INFO") in PROBE_PATHS or host_allowed(host, self.allowed):
            return self.app(environ, _with_security_headers(start_response))
        shown = (host or raw)[:MAX_HOST_SHOWN]
        body = json.dumps({"error": f"host {shown!r} is not in ALLOWED_HOSTS"}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *SECURITY_HEADERS.items()]
        start_response("400 Bad Request", headers)
        return [body]


def _with_security_headers(start_response):
    """START_RESPONSE adding whichever security headers the response lacks."""

    def start(status, headers, exc_info=None):
        """Complete HEADERS, then start the response."""
        present = {name.lower() for name, _ in headers}
        headers = [*headers, *((k, v) for k, v in SECURITY_HEADERS.items() if k.lower() not in present)]
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return start
