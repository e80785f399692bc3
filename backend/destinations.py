"""Notifications: destinations (NOTIFY_URLS, NOTIFY_CONFIG) and their filters, messages, signatures, dead letters.

Shared by the worker (which delivers) and the web's CLI and /metrics (which read the dead letters and counts);
Redis and pure code only, never Celery. Apprise is imported only where a destination is parsed or notified.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.typing import EncodableT, FieldT

from backend.settings import ConfigError, Settings
from backend.signal_schema import (
    NOTIFY_DEAD_KEY,
    NOTIFY_DEAD_MAXLEN,
    NOTIFY_RESEND_KEY,
    NOTIFY_STATS_KEY,
    SignalType,
    utc_iso,
)

WEBHOOK = "webhook"
APPRISE = "apprise"
SIGNATURE_HEADER = "Quantum-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
FILTER_KEYS = ("symbols", "strategies", "types")
# C0 and C1 controls, DEL, line and paragraph separators, bidi embeddings/overrides/isolates, BOM and zero widths.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_SPACE_RE = re.compile("[\t\n\x0b\x0c\r\x1c-\x1f\x85\u2028\u2029]")


@dataclass(frozen=True)
class Destination:
    """Where signals go: a signed webhook (http/https) or an Apprise URL, with optional filters (empty: all)."""

    url: str = field(repr=False)
    kind: str
    label: str  # the URL with its secrets hidden: what logs, dead letters and errors show
    symbols: frozenset[str] = frozenset()
    strategies: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        """A stable short name of the URL: what tasks and dead letters carry instead of the URL and its secrets."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def matches(self, signal: Mapping[str, Any]) -> bool:
        """True when SIGNAL passes every filter; a strategy filter matches the full spec or its name."""
        if self.symbols and signal.get("symbol") not in self.symbols:
            return False
        if self.types and signal.get("type") not in self.types:
            return False
        if self.strategies:
            spec = str(signal.get("strategy") or "")
            if spec not in self.strategies and spec.split(":", 1)[0] not in self.strategies:
                return False
        return True


def redact_notify_url(url: str) -> str:
    """A destination URL for logs without parsing it: scheme and host only, since Apprise URLs hold tokens anywhere."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    if scheme.lower() in ("http", "https"):
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return f"{scheme}://***"
        hidden = "/***" if (parts.path not in ("", "/") or parts.query) else ""
        return f"{scheme}://{host}{port}{hidden}"
    return f"{scheme}://***"


def parse_destination(url: str, where: str, filters: Mapping[str, Iterable[str]] | None = None) -> Destination:
    """One destination; raise ConfigError naming WHERE and the redacted URL when it cannot be used."""
    filters = filters or {}
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        try:
            valid = bool(urlsplit(url).hostname)
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError(f"{where}={redact_notify_url(url)}: a webhook URL needs a host, e.g. https://host/path")
        kind, label = WEBHOOK, redact_notify_url(url)
    else:
        import apprise

        # Redirects off for every plugin (as the worker sends): a URL that turns them back on is refused below.
        asset = apprise.AppriseAsset(http_redirects=False)
        plugin = apprise.Apprise.instantiate(url, asset=asset) if scheme else None
        if plugin is None:
            raise ConfigError(
                f"{where}={redact_notify_url(url)}: not a URL Apprise can send to (unknown scheme or missing parts); "
                "use http(s):// for a signed webhook or a service URL such as tgram://, discord://, json:// "
                "(https://github.com/caronc/apprise/wiki)"
            )
        # Apprise's own privacy form keeps what identifies the service and masks tokens.
        # Apprise marks some of its modules typed, but leaves URLBase.url unannotated.
        kind, label = APPRISE, plugin.url(privacy=True).split("?", 1)[0]  # type: ignore[no-untyped-call]
        if getattr(plugin, "redirects", False):
            raise ConfigError(
                f"{where}={label}: redirect=yes is not allowed; notifications never follow redirects, "
                "give the destination's final URL"
            )
    types = frozenset(str(t).upper() for t in filters.get("types", ()))
    bad = sorted(types - {t.value for t in SignalType})
    if bad:
        raise ConfigError(f"{where}: types {bad} unknown; use BUY and/or SELL")
    return Destination(
        url,
        kind,
        label,
        frozenset(str(s).upper() for s in filters.get("symbols", ())),
        frozenset(str(s) for s in filters.get("strategies", ())),
        types,
    )


def load_config_file(path: str) -> list[Destination]:
    """The [[destination]] tables of the TOML file at PATH; raise ConfigError naming NOTIFY_CONFIG."""
    where = f"NOTIFY_CONFIG={path!r}"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc}); give the path of a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"destination"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; the file holds [[destination]] tables only")
    tables = data.get("destination", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: write each destination as a [[destination]] table")
    found = []
    for number, table in enumerate(tables, 1):
        at = f"{where}: destination {number}"
        extra = sorted(set(table) - {"url", *FILTER_KEYS})
        if extra:
            raise ConfigError(f"{at}: unknown keys {extra}; use url, symbols, strategies, types")
        url = table.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f'{at}: needs url = "…"')
        for key in FILTER_KEYS:
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f'{at}: {key} must be a list of strings, e.g. {key} = ["…"]')
        found.append(parse_destination(url.strip(), f"{where}: destination {number} url", table))
    return found


def load_destinations(settings: Settings) -> tuple[Destination, ...]:
    """NOTIFY_URLS and NOTIFY_CONFIG's destinations merged; raise ConfigError naming the bad value."""
    found = [parse_destination(url, "NOTIFY_URLS") for url in settings.notify_urls]
    if settings.notify_config:
        found += load_config_file(settings.notify_config)
    seen: dict[str, Destination] = {}
    for destination in found:
        if destination.id in seen:
            raise ConfigError(
                f"NOTIFY_URLS={destination.label}: listed twice (NOTIFY_URLS and NOTIFY_CONFIG together); "
                "keep one entry per URL"
            )
        seen[destination.id] = destination
    if any(d.kind == WEBHOOK for d in found) and not settings.notify_webhook_secret:
        raise ConfigError(
            "NOTIFY_WEBHOOK_SECRET is empty but a webhook (http/https) destination is set; set it to a long "
            "random secret (receivers verify the Quantum-Signature header with it)"
        )
    return tuple(found)


def plain_text(value: object) -> str:
    """VALUE as text without control characters: line breaks and tabs become spaces, the others (NUL, ESC, bidi
    overrides, …) are dropped, so a field cannot start lines, escapes or reordering of its own in a message."""
    return _CONTROL_RE.sub(lambda m: " " if _SPACE_RE.match(m.group()) else "", str(value))


def message(signal: Mapping[str, Any]) -> str:
    """The human form: `BUY BTCUSDT @ 60012.5 · sma_cross 9/21 · 1m · 16:42 UTC`, then the reason on its own line.

    Every field goes through plain_text: the message's only line break is the one before the reason.
    """
    signal = {key: plain_text(value) for key, value in signal.items() if isinstance(value, (str, int, float))}
    head = " ".join(str(part) for part in (signal.get("type"), signal.get("symbol")) if part)
    parts = [f"{head} @ {signal.get('price')}"]
    spec = str(signal.get("strategy") or "")
    if spec:
        name, _, params = spec.partition(":")
        values = "/".join(p.partition("=")[2] for p in params.split(",") if p)
        parts.append(f"{name} {values}".strip())
    if signal.get("timeframe"):
        parts.append(str(signal["timeframe"]))
    try:
        parts.append(datetime.fromisoformat(str(signal.get("bar_time"))).strftime("%H:%M UTC"))
    except ValueError:
        pass
    text = " · ".join(parts)
    return f"{text}\n{signal['reason']}" if signal.get("reason") else text


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The v1 signature: hex HMAC-SHA256 of `<timestamp>.<body>` with SECRET (Stripe's scheme)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The Quantum-Signature header's value: t=<unix seconds>,v1=<hex>."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify_signature(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """What a receiver does: True when HEADER signs BODY with SECRET and is at most TOLERANCE_S old."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:  # a replayed old request
        return False
    return hmac.compare_digest(signature(secret, body, timestamp), fields.get("v1", ""))


def count(client: redis.Redis, kind: str, result: str) -> None:
    """Add one to the KIND:OUTCOME count (sent, retried, dead) that the web's /metrics exports."""
    client.hincrby(NOTIFY_STATS_KEY, f"{kind}:{result}", 1)


def stats(client: redis.Redis) -> dict[tuple[str, str], int]:
    """{(kind, result): count}: sent, retried, dead."""
    found: dict[tuple[str, str], int] = {}
    counts = cast(dict[str, str], client.hgetall(NOTIFY_STATS_KEY))  # a decoded client (make_redis) replies str
    for key, value in counts.items():
        kind, _, result = key.partition(":")
        found[(kind, result)] = int(value)
    return found


def add_dead_letter(
    client: redis.Redis, destination_id: str, kind: str, label: str, raw: str, error: str, attempts: int
) -> str:
    """Keep a delivery that gave up (the newest NOTIFY_DEAD_MAXLEN are kept) and count it; return its id."""
    fields: dict[FieldT, EncodableT] = {
        "dest": destination_id,
        "kind": kind,
        "target": label,
        "error": error[:300],
        "attempts": attempts,
        "at": utc_iso(millis=True),
        "sig": raw,
    }
    pipe = client.pipeline(transaction=True)
    pipe.xadd(NOTIFY_DEAD_KEY, fields, maxlen=NOTIFY_DEAD_MAXLEN, approximate=False)
    pipe.hincrby(NOTIFY_STATS_KEY, f"{kind}:dead", 1)
    return pipe.execute()[0]


def dead_letters(client: redis.Redis) -> list[dict[str, str]]:
    """Every kept dead letter, oldest first, each with its `id`."""
    # A decoded client (make_redis) replies [(id, {field: value})] in str, [] when there is no stream.
    entries = cast(list[tuple[str, dict[str, str]]], client.xrange(NOTIFY_DEAD_KEY))
    return [{"id": entry_id, **fields} for entry_id, fields in entries]


def resend(client: redis.Redis, ids: Iterable[str] | None = None) -> list[str]:
    """Put the dead letters IDS (all when None) back for the dispatcher to deliver again; return the ids moved."""
    moved: list[str] = []
    for letter in dead_letters(client):
        if ids is not None and letter["id"] not in ids:
            continue
        pipe = client.pipeline(transaction=True)  # never both kept and queued, never neither
        pipe.rpush(NOTIFY_RESEND_KEY, json.dumps({"dest": letter["dest"], "sig": letter["sig"]}))
        pipe.xdel(NOTIFY_DEAD_KEY, letter["id"])
        pipe.execute()
        moved.append(letter["id"])
    return moved
