"""Settings read once from the environment into one typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

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


def _slow_client_max_bytes(env: Mapping[str, str], default: int, signal_default: int) -> int:
    """SLOW_CLIENT_MAX_BYTES, at least twice MAX_SIGNAL_BYTES: a client reading along may have a signal unsent."""
    value = _int(env, "SLOW_CLIENT_MAX_BYTES", default, 1024)
    signal_bytes = _int(env, "MAX_SIGNAL_BYTES", signal_default, 64, 16 * 1024 * 1024)
    if value < 2 * signal_bytes:
        raise ConfigError(
            f"SLOW_CLIENT_MAX_BYTES={value} is below twice MAX_SIGNAL_BYTES ({signal_bytes}): a client reading "
            f"along could be cut; raise it to at least {2 * signal_bytes} (default {default})"
        )
    return value


_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


@dataclass(frozen=True)
class MarketSourceSpec:
    """MARKET_SOURCE parsed: binance (= ccxt:binance), ccxt with an EXCHANGE id, simulated, or csv with a file PATH.

    Whether ccxt lists the exchange is checked by the worker (tasks/config.py), which imports ccxt; the web does not.
    """

    kind: Literal["binance", "ccxt", "simulated", "csv"]
    path: str = ""
    exchange: str = ""

    @classmethod
    def parse(cls, text: str) -> MarketSourceSpec:
        """The spec of "binance", "ccxt:ID", "simulated" or "csv:PATH"; raise ConfigError for anything else."""
        if text == "binance":
            return cls("binance")
        if text == "simulated":
            return cls("simulated")
        if text.startswith("ccxt:"):
            if not _EXCHANGE_ID.match(text[5:]):
                raise ConfigError(
                    f"MARKET_SOURCE={text!r} needs a ccxt exchange id after ccxt:, e.g. ccxt:binance or ccxt:kraken"
                )
            return cls("ccxt", exchange=text[5:])
        if not text.startswith("csv:"):
            raise ConfigError(
                f"MARKET_SOURCE={text!r} is unknown; use binance, ccxt:<exchange id>, simulated or csv:PATH"
            )
        if not text[4:]:
            raise ConfigError("MARKET_SOURCE=csv: needs a file path, e.g. csv:data/btc.csv")
        return cls("csv", text[4:])

    def __str__(self) -> str:
        if self.kind == "ccxt":
            return f"ccxt:{self.exchange}"
        return f"csv:{self.path}" if self.kind == "csv" else self.kind


def _timeframes(env: Mapping[str, str], default: tuple[str, ...]) -> tuple[str, ...]:
    timeframes = _list(env, "TIMEFRAME", default)
    if not timeframes:
        raise ConfigError("TIMEFRAME is empty; set one timeframe or a comma-separated list, e.g. TIMEFRAME=1m,15m,1h")
    unknown = [t for t in timeframes if t not in TIMEFRAMES]
    if unknown:
        raise ConfigError(
            f"TIMEFRAME={env.get('TIMEFRAME', '')!r} is unknown: {', '.join(map(repr, unknown))} is not a timeframe; "
            f"use one or more of {', '.join(TIMEFRAMES)}, comma-separated"
        )
    repeated = sorted({t for t in timeframes if timeframes.count(t) > 1})
    if repeated:
        raise ConfigError(f"TIMEFRAME={env.get('TIMEFRAME', '')!r} lists {', '.join(repeated)} twice; list each once")
    return timeframes


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


def _exchange_api_url(env: Mapping[str, str]) -> str:
    """EXCHANGE_API_URL, or its old name BINANCE_API_URL; "" when neither is set (the exchange's own URLs)."""
    name = "EXCHANGE_API_URL" if env.get("EXCHANGE_API_URL", "").strip() else "BINANCE_API_URL"
    url = env.get(name, "").strip().rstrip("/")
    if url and not re.match(r"^https?://[^/?#]+$", url):
        raise ConfigError(
            f"{name}={url!r} must start with http:// or https:// and name only a host and optional port "
            "(e.g. http://127.0.0.1:8900): it replaces the scheme, host and port of the exchange's REST URLs"
        )
    return url


MAX_HORIZON = 999  # bars after the signal; the chart keeps CHART_MAX_BARS, so a longer one could never be scored


def parse_horizons(raw: str, name: str = "OUTCOME_HORIZONS") -> tuple[int, ...]:
    """Horizons in bars from a comma-separated list, sorted; raise ConfigError naming NAME and the fix."""
    horizons: list[int] = []
    for item in raw.split(","):
        text = item.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_HORIZON:
            raise ConfigError(
                f"{name}={raw!r}: {text!r} is not a number of bars from 1 to {MAX_HORIZON}; "
                "use a comma-separated list such as 1,5,20"
            )
        if int(text) in horizons:
            raise ConfigError(f"{name}={raw!r} lists {int(text)} twice; list each horizon once, e.g. 1,5,20")
        horizons.append(int(text))
    return tuple(sorted(horizons))


def _horizons(env: Mapping[str, str], default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get("OUTCOME_HORIZONS", "").strip()
    return parse_horizons(raw) if raw else default


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
    timeframes: tuple[str, ...] = ("1m",)
    market_source: MarketSourceSpec = MarketSourceSpec("binance")
    # "" keeps the exchange's own REST URLs; else the scheme://host[:port] that replaces theirs.
    exchange_api_url: str = ""
    # Parsed by the worker (tasks/config.py), which owns the strategies; the web never reads it.
    strategies: str = "sma_cross:fast=9,slow=21"
    outcome_horizons: tuple[int, ...] = (1, 5, 20)
    # Distinct /api/stats entries (scan strategies and outside source × strategy) per epoch; beyond, not counted.
    stats_max_entries: int = 500
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
    slow_client_max_packets: int = 1000
    slow_client_max_bytes: int = 1 << 20
    publish_tokens: tuple[str, ...] = field(default=(), repr=False)
    publish_rate_limit: str = "120/minute"
    # Parsed by the worker (tasks/config.py, backend/destinations.py); the web only reads the dead letters and counts.
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    notify_webhook_secret: str = field(default="", repr=False)
    notify_config: str = ""
    notify_max_age_s: int = 3600
    notify_timeout_s: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise ConfigError naming the bad one."""
        env = os.environ if env is None else env
        # Every field has a plain default (no default_factory), so none of these is MISSING.
        default: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        source = _text(env, "MARKET_SOURCE", str(default["market_source"]))
        return cls(
            redis_url=_redis_url(env, default["redis_url"]),
            port=_int(env, "PORT", default["port"], 0, 65535),
            signal_channel=_text(env, "SIGNAL_CHANNEL", default["signal_channel"]),
            scan_interval=_int(env, "SCAN_INTERVAL", default["scan_interval"], 1, 86400),
            symbols=_symbols(env, default["symbols"]),
            timeframes=_timeframes(env, default["timeframes"]),
            market_source=MarketSourceSpec.parse(source),
            exchange_api_url=_exchange_api_url(env),
            strategies=_text(env, "STRATEGIES", default["strategies"]),
            outcome_horizons=_horizons(env, default["outcome_horizons"]),
            stats_max_entries=_int(env, "STATS_MAX_ENTRIES", default["stats_max_entries"], 1, 100_000),
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
            # At least 250: a client that has just caught up may still hold a replay batch (200) in its queue.
            slow_client_max_packets=_int(env, "SLOW_CLIENT_MAX_PACKETS", default["slow_client_max_packets"], 250),
            slow_client_max_bytes=_slow_client_max_bytes(
                env, default["slow_client_max_bytes"], default["max_signal_bytes"]
            ),
            publish_tokens=_list(env, "SIGNALS_PUBLISH_TOKEN", default["publish_tokens"]),
            publish_rate_limit=_rate(env, "PUBLISH_RATE_LIMIT", default["publish_rate_limit"]),
            notify_urls=tuple(env.get("NOTIFY_URLS", "").split()),
            notify_webhook_secret=env.get("NOTIFY_WEBHOOK_SECRET", "").strip(),
            notify_config=env.get("NOTIFY_CONFIG", "").strip(),
            notify_max_age_s=_int(env, "NOTIFY_MAX_AGE_S", default["notify_max_age_s"], 1, 7 * 24 * 3600),
            notify_timeout_s=_int(env, "NOTIFY_TIMEOUT_S", default["notify_timeout_s"], 1, 300),
        )

    @property
    def timeframe(self) -> str:
        """The first of TIMEFRAME's timeframes (what single-timeframe readers show)."""
        return self.timeframes[0]


def load_settings() -> Settings:
    """The settings of this process, read from the environment."""
    return Settings.from_env()
