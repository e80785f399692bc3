"""Settings read once from the environment into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

TIMEFRAMES = ("1s", "5s", "10s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; set it to a whole number such as {default}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name}={value} is out of range; it must be {bounds} (default {default})")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw not in ("1", "0"):
        raise ConfigError(f"{name}={raw!r} is not a switch; set it to 1 (on) or 0 (off) (default {int(default)})")
    return raw == "1"


def _list(env: Mapping[str, str], name: str, default: str, sep: str = ",") -> tuple[str, ...]:
    raw = env.get(name, default)
    return tuple(item.strip() for item in raw.split(sep) if item.strip())


def _redis_url(env: Mapping[str, str]) -> str:
    url = env.get("REDIS_URL", "").strip() or "redis://localhost:6379/0"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL={url!r} is not a Redis URL; use redis://host:port/db or rediss://… for TLS")
    from backend.redis_client import tls_options

    try:
        tls_options(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return url


def _market_source(env: Mapping[str, str]) -> str:
    source = env.get("MARKET_SOURCE", "").strip() or "binance"
    if source not in ("binance", "simulated") and not source.startswith("csv:"):
        raise ConfigError(f"MARKET_SOURCE={source!r} is unknown; use binance, simulated or csv:PATH")
    if source.startswith("csv:") and not source[4:]:
        raise ConfigError("MARKET_SOURCE=csv: needs a file path, e.g. csv:data/btc.csv")
    return source


def _timeframe(env: Mapping[str, str]) -> str:
    timeframe = env.get("TIMEFRAME", "").strip() or "1m"
    if timeframe not in TIMEFRAMES:
        raise ConfigError(f"TIMEFRAME={timeframe!r} is unknown; use one of {', '.join(TIMEFRAMES)}")
    return timeframe


def _symbols(env: Mapping[str, str]) -> tuple[str, ...]:
    symbols = tuple(s.upper() for s in _list(env, "SYMBOLS", "BTCUSDT"))
    if not symbols:
        raise ConfigError("SYMBOLS is empty; list at least one symbol, e.g. SYMBOLS=BTCUSDT,ETHUSDT")
    bad = [s for s in symbols if not s.isalnum() or len(s) > 32]
    if bad:
        raise ConfigError(f"SYMBOLS has invalid entries {bad}; use exchange symbols such as BTCUSDT")
    return symbols


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a rate limit; use e.g. {default!r} (N/second, N/minute, …; ';' between several)"
        ) from None
    return raw


@dataclass(frozen=True)
class Settings:
    """Every setting of the product, with the defaults of DESIGN.md."""

    redis_url: str = "redis://localhost:6379/0"
    port: int = 5000
    signal_channel: str = "quantum_signals"
    scan_interval: int = 60
    symbols: tuple[str, ...] = ("BTCUSDT",)
    timeframe: str = "1m"
    market_source: str = "binance"
    binance_api_url: str = "https://api.binance.com"
    strategies: str = "sma_cross:fast=9,slow=21"
    history_maxlen: int = 10000
    max_signal_bytes: int = 65536
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_connections_per_ip: int = 256
    socket_timeout: int = 60
    connect_timeout: int = 5
    http_rate_limit: str = "50/second"
    subscribe_rate_limit: str = "5/second"
    fast_broadcast: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        channel = env.get("SIGNAL_CHANNEL", "").strip() or "quantum_signals"
        api_url = (env.get("BINANCE_API_URL", "").strip() or "https://api.binance.com").rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(f"BINANCE_API_URL={api_url!r} must start with http:// or https://")
        return cls(
            redis_url=_redis_url(env),
            port=_int(env, "PORT", 5000, 0, 65535),
            signal_channel=channel,
            scan_interval=_int(env, "SCAN_INTERVAL", 60, 1, 86400),
            symbols=_symbols(env),
            timeframe=_timeframe(env),
            market_source=_market_source(env),
            binance_api_url=api_url,
            strategies=env.get("STRATEGIES", "").strip() or "sma_cross:fast=9,slow=21",
            history_maxlen=_int(env, "HISTORY_MAXLEN", 10000, 1, 10_000_000),
            max_signal_bytes=_int(env, "MAX_SIGNAL_BYTES", 65536, 64, 16 * 1024 * 1024),
            auth_tokens=_list(env, "SIGNALS_AUTH_TOKEN", ""),
            cors_origins=_list(env, "CORS_ORIGINS", ""),
            allowed_hosts=tuple(h.lower() for h in _list(env, "ALLOWED_HOSTS", "")),
            max_connections_per_ip=_int(env, "MAX_CONNECTIONS_PER_IP", 256, 0, 1_000_000),
            socket_timeout=_int(env, "SOCKET_TIMEOUT", 60, 1, 3600),
            connect_timeout=_int(env, "CONNECT_TIMEOUT", 5, 1, 300),
            http_rate_limit=_rate(env, "HTTP_RATE_LIMIT", "50/second"),
            subscribe_rate_limit=_rate(env, "SUBSCRIBE_RATE_LIMIT", "5/second"),
            fast_broadcast=_bool(env, "FAST_BROADCAST", True),
        )


def load_settings() -> Settings:
    """The settings of this process, read from the environment."""
    return Settings.from_env()
