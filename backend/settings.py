"""Settings read once from the environment into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

from backend.signal_schema import CHANNEL_DEFAULT, valid_symbol

TIMEFRAMES = ("1s", "5s", "10s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says how to fix it."""


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


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


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...], sep: str = ",") -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(sep) if item.strip())


def _redis_url(env: Mapping[str, str], default: str) -> str:
    url = _text(env, "REDIS_URL", default)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL={url!r} is not a Redis URL; use redis://host:port/db or rediss://… for TLS")
    from backend.redis_client import tls_options

    try:
        tls_options(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return url


@dataclass(frozen=True)
class MarketSourceSpec:
    """MARKET_SOURCE parsed: binance, simulated, or csv with the PATH of the file to replay."""

    kind: Literal["binance", "simulated", "csv"]
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> MarketSourceSpec:
        """The spec of "binance", "simulated" or "csv:PATH"; raise ConfigError for anything else."""
        if text in ("binance", "simulated"):
            return cls(text)
        if not text.startswith("csv:"):
            raise ConfigError(f"MARKET_SOURCE={text!r} is unknown; use binance, simulated or csv:PATH")
        if not text[4:]:
            raise ConfigError("MARKET_SOURCE=csv: needs a file path, e.g. csv:data/btc.csv")
        return cls("csv", text[4:])

    def __str__(self) -> str:
        return f"csv:{self.path}" if self.kind == "csv" else self.kind


def _timeframe(env: Mapping[str, str], default: str) -> str:
    timeframe = _text(env, "TIMEFRAME", default)
    if timeframe not in TIMEFRAMES:
        raise ConfigError(f"TIMEFRAME={timeframe!r} is unknown; use one of {', '.join(TIMEFRAMES)}")
    return timeframe


def _symbols(env: Mapping[str, str], default: tuple[str, ...]) -> tuple[str, ...]:
    symbols = tuple(s.upper() for s in _list(env, "SYMBOLS", default))
    if not symbols:
        raise ConfigError("SYMBOLS is empty; list at least one symbol, e.g. SYMBOLS=BTCUSDT,ETHUSDT")
    bad = [s for s in symbols if not valid_symbol(s)]
    if bad:
        raise ConfigError(
            f"SYMBOLS has invalid entries {bad}; use exchange symbols such as BTCUSDT or BTC/USDT "
            "(letters, digits and /:._-, at most 32)"
        )
    return symbols


def _binance_api_url(env: Mapping[str, str], default: str) -> str:
    url = _text(env, "BINANCE_API_URL", default).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"BINANCE_API_URL={url!r} must start with http:// or https://")
    return url


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _text(env, name, default)
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
    """Every setting of the product, with the defaults of docs/architecture.md."""

    redis_url: str = "redis://localhost:6379/0"
    port: int = 5000
    signal_channel: str = CHANNEL_DEFAULT
    scan_interval: int = 60
    symbols: tuple[str, ...] = ("BTCUSDT",)
    timeframe: str = "1m"
    market_source: MarketSourceSpec = MarketSourceSpec("binance")
    binance_api_url: str = "https://api.binance.com"
    # Parsed by the worker (tasks/config.py), which owns the strategies; the web never reads it.
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
    publish_tokens: tuple[str, ...] = field(default=(), repr=False)
    publish_rate_limit: str = "120/minute"
    # Parsed by the worker (tasks/config.py, backend/notify.py); the web only reads the dead letters and counts.
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    notify_webhook_secret: str = field(default="", repr=False)
    notify_config: str = ""
    notify_max_age_s: int = 3600
    notify_timeout_s: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        default = {f.name: f.default for f in fields(cls)}
        source = _text(env, "MARKET_SOURCE", str(default["market_source"]))
        return cls(
            redis_url=_redis_url(env, default["redis_url"]),
            port=_int(env, "PORT", default["port"], 0, 65535),
            signal_channel=_text(env, "SIGNAL_CHANNEL", default["signal_channel"]),
            scan_interval=_int(env, "SCAN_INTERVAL", default["scan_interval"], 1, 86400),
            symbols=_symbols(env, default["symbols"]),
            timeframe=_timeframe(env, default["timeframe"]),
            market_source=MarketSourceSpec.parse(source),
            binance_api_url=_binance_api_url(env, default["binance_api_url"]),
            strategies=_text(env, "STRATEGIES", default["strategies"]),
            history_maxlen=_int(env, "HISTORY_MAXLEN", default["history_maxlen"], 1, 10_000_000),
            max_signal_bytes=_int(env, "MAX_SIGNAL_BYTES", default["max_signal_bytes"], 64, 16 * 1024 * 1024),
            auth_tokens=_list(env, "SIGNALS_AUTH_TOKEN", default["auth_tokens"]),
            cors_origins=_list(env, "CORS_ORIGINS", default["cors_origins"]),
            allowed_hosts=tuple(h.lower() for h in _list(env, "ALLOWED_HOSTS", default["allowed_hosts"])),
            max_connections_per_ip=_int(env, "MAX_CONNECTIONS_PER_IP", default["max_connections_per_ip"], 0, 1_000_000),
            socket_timeout=_int(env, "SOCKET_TIMEOUT", default["socket_timeout"], 1, 3600),
            connect_timeout=_int(env, "CONNECT_TIMEOUT", default["connect_timeout"], 1, 300),
            http_rate_limit=_rate(env, "HTTP_RATE_LIMIT", default["http_rate_limit"]),
            subscribe_rate_limit=_rate(env, "SUBSCRIBE_RATE_LIMIT", default["subscribe_rate_limit"]),
            fast_broadcast=_bool(env, "FAST_BROADCAST", default["fast_broadcast"]),
            publish_tokens=_list(env, "SIGNALS_PUBLISH_TOKEN", default["publish_tokens"]),
            publish_rate_limit=_rate(env, "PUBLISH_RATE_LIMIT", default["publish_rate_limit"]),
            notify_urls=tuple(env.get("NOTIFY_URLS", "").split()),
            notify_webhook_secret=env.get("NOTIFY_WEBHOOK_SECRET", "").strip(),
            notify_config=env.get("NOTIFY_CONFIG", "").strip(),
            notify_max_age_s=_int(env, "NOTIFY_MAX_AGE_S", default["notify_max_age_s"], 1, 7 * 24 * 3600),
            notify_timeout_s=_int(env, "NOTIFY_TIMEOUT_S", default["notify_timeout_s"], 1, 300),
        )


def load_settings() -> Settings:
    """The settings of this process, read from the environment."""
    return Settings.from_env()
