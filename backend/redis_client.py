"""The one place that builds Redis clients from REDIS_URL (including rediss:// as on Heroku)."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def tls_options(url: str) -> dict[str, Any]:
    """redis-py keyword options for a rediss:// URL's ssl_cert_reqs / ssl_ca_certs query."""
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return {}
    query = parse_qs(parts.query)
    reqs = query.get("ssl_cert_reqs", ["required"])[0].lower().removeprefix("cert_")
    if reqs not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs={reqs!r} in REDIS_URL is unknown; use none, optional or required")
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[reqs]}
    if "ssl_ca_certs" in query:
        options["ssl_ca_certs"] = query["ssl_ca_certs"][0]
    return options


def strip_tls_query(url: str) -> str:
    """The URL without the TLS query options (they travel as keyword options instead)."""
    parts = urlsplit(url)
    query = {k: v for k, v in parse_qs(parts.query).items() if not k.startswith("ssl_")}
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def redis_options(url: str) -> dict[str, Any]:
    """Connection options shared by every client: timeouts, keepalive and TLS."""
    return {
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 15,
        "retry_on_timeout": False,
        **tls_options(url),
    }


def make_redis(url: str, **overrides: Any) -> redis.Redis:
    """A Redis client for URL; string replies decoded as UTF-8."""
    options = {**redis_options(url), "decode_responses": True, **overrides}
    return redis.Redis.from_url(strip_tls_query(url), **options)


def make_async_redis(url: str, **overrides: Any) -> redis.asyncio.Redis:
    """An asyncio Redis client for URL, with make_redis's options; string replies decoded as UTF-8."""
    options = {**redis_options(url), "decode_responses": True, **overrides}
    return redis.asyncio.Redis.from_url(strip_tls_query(url), **options)


def redact_url(url: str) -> str:
    """URL for logs: its password (userinfo or ?password=) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        # A lone userinfo is taken as the password by some clients: hide it too.
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = (
        "&".join(
            f"{pair.partition('=')[0]}=***" if pair.partition("=")[0].lower() == "password" else pair
            for pair in parts.query.split("&")
        )
        if parts.query
        else ""
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
