"""Signal outcomes (docs/architecture.md, "Charts and outcomes"): the one scoring rule, the counts kept per
strategy (and symbol) in Redis, and their reads. Shared by the worker, the backtest and the web process."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from backend.signal_schema import (
    STATS_INDEX_PREFIX,
    STATS_NOT_COUNTED_PREFIX,
    STATS_OUTSIDE_INDEX_PREFIX,
    SignalType,
    outcome_key,
    outside_stats_key,
    stats_key,
    utc_iso,
)

ALL_SYMBOLS = "*"  # the stats field prefix of a strategy's totals


def score(kind: str, entry_close: float, exit_close: float) -> float:
    """r_h = d × (close[i+h] / close[i] − 1), d = +1 for BUY, −1 for SELL."""
    direction = 1.0 if kind == SignalType.BUY.value else -1.0
    return direction * (exit_close / entry_close - 1.0)


def outcomes_at(kind: str, close: Sequence[float], index: int, horizons: Iterable[int]) -> dict[int, float]:
    """{h: r_h} of a signal on bar INDEX of CLOSE, for every horizon whose bar is in CLOSE (closed)."""
    return {h: score(kind, float(close[index]), float(close[index + h])) for h in horizons if index + h < len(close)}


@dataclass
class Tally:
    """Outcomes at one horizon: how many, their sum and how many were > 0."""

    n: int = 0
    total: float = 0.0
    hits: int = 0

    def add(self, r: float) -> None:
        """Count one outcome."""
        self.n += 1
        self.total += r
        self.hits += r > 0

    def summary(self) -> dict[str, Any]:
        """{"n", "hit_rate", "mean_return"}, the rates None when n is 0."""
        if self.n == 0:
            return {"n": 0, "hit_rate": None, "mean_return": None}
        return {"n": self.n, "hit_rate": self.hits / self.n, "mean_return": self.total / self.n}


def stats_entry(
    strategy: str, signals: int, tallies: dict[int, Tally], symbol: str | None = None, source: str | None = None
) -> dict[str, Any]:
    """One entry of the stats list, in the shape of docs/architecture.md (SOURCE: an outside signals' entry)."""
    entry: dict[str, Any] = {"strategy": strategy}
    if source is not None:
        entry["source"] = source
    if symbol is not None:
        entry["symbol"] = symbol
    entry["signals"] = signals
    entry["outcomes"] = {str(h): tally.summary() for h, tally in tallies.items()}
    return entry


def stats_of(
    signals: Sequence[Mapping[str, Any]], open_time: Sequence[int], close: Sequence[float], horizons: Sequence[int]
) -> dict[str, tuple[int, dict[int, Tally]]]:
    """{strategy: (signals, {h: Tally})} of SIGNALS on the bars (OPEN_TIME, CLOSE), as the live scan counts them."""
    from bisect import bisect_left

    found: dict[str, tuple[int, dict[int, Tally]]] = {}
    times = list(open_time)
    for signal in signals:
        count, tallies = found.get(signal["strategy"], (0, {h: Tally() for h in horizons}))
        found[signal["strategy"]] = (count + 1, tallies)
        when = signal_bar_ms(signal)
        index = bisect_left(times, when) if when is not None else len(times)
        if index < len(times) and times[index] == when:
            for h, r in outcomes_at(signal["type"], close, index, horizons).items():
                tallies[h].add(r)
    return found


def signal_bar_ms(signal: Mapping[str, Any]) -> int | None:
    """Epoch ms of the signal's bar_time, None when it has no valid one."""
    return signal_ms(signal.get("bar_time"))


def signal_ms(text: object) -> int | None:
    """Epoch ms of an ISO-8601 time of a signal (bar_time, emitted_at), None when it is no valid one."""
    from datetime import datetime

    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment.tzinfo is not None else None


def late_reason(horizon: int, closed_ms: int) -> str:
    """Why a signal is not scored: it was emitted once its first HORIZON's bar had closed (at CLOSED_MS)."""
    return f"late: emitted after its +{horizon} bar closed ({utc_iso(closed_ms)}), when its outcome was known"


def stats_fields(scope: str, horizons: Sequence[int]) -> list[str]:
    """The stats hash fields of SCOPE (a symbol, or ALL_SYMBOLS): signals, then n, sum, hits per horizon."""
    return [f"{scope}|signals"] + [f"{scope}|{part}|{h}" for h in horizons for part in ("n", "sum", "hits")]


def read_stats(
    client: redis.Redis, epoch: str, horizons: Sequence[int], strategy: str | None = None, symbol: str | None = None
) -> list[dict[str, Any]]:
    """The stats entries of EPOCH (of one STRATEGY if given; per SYMBOL if given), in strategy then source order:
    the scan's strategies (no "source"), then outside signals' by source."""
    pipe = client.pipeline(transaction=False)
    pipe.smembers(STATS_INDEX_PREFIX + epoch)
    pipe.smembers(STATS_OUTSIDE_INDEX_PREFIX + epoch)
    scan_names, outside_names = pipe.execute()
    named: list[tuple[str, str | None, str]] = [(name, None, stats_key(epoch, name)) for name in scan_names]
    for member in outside_names:
        source, name = _outside_entry(member)
        if name is not None:
            named.append((name, source, outside_stats_key(epoch, member)))
    named.sort(key=lambda e: (e[0], e[1] is not None, e[1] or ""))
    if strategy is not None:
        named = [e for e in named if e[0] == strategy]
    fields = stats_fields(symbol or ALL_SYMBOLS, horizons)
    for _name, _source, key in named:
        pipe.hmget(key, fields)
    entries = []
    for (entry_name, entry_source, _key), values in zip(named, pipe.execute()):
        signals = int(values[0] or 0)
        if symbol is not None and not signals:
            continue
        tallies = {}
        for k, h in enumerate(horizons):
            n, total, hits = values[1 + 3 * k : 4 + 3 * k]
            tallies[h] = Tally(int(n or 0), float(total or 0.0), int(hits or 0))
        entries.append(stats_entry(entry_name, signals, tallies, symbol, entry_source))
    return entries


def _outside_entry(member: str) -> tuple[str, str | None]:
    """(source, strategy) of an outside stats index member (JSON ["<source>", "<strategy>"]); strategy None if bad."""
    try:
        source, name = json.loads(member)
    except (ValueError, TypeError):
        return "", None
    return (source, name) if isinstance(source, str) and isinstance(name, str) else ("", None)


def stats_limits(client: redis.Redis, epoch: str, max_entries: int) -> dict[str, Any]:
    """What /api/stats says of STATS_MAX_ENTRIES: the cap, and how many signals it left out of the stats."""
    return {"max_entries": max_entries, "not_counted": int(client.get(STATS_NOT_COUNTED_PREFIX + epoch) or 0)}


def read_outcomes(
    client: redis.Redis, signals: Sequence[dict[str, Any]], horizons: Sequence[int]
) -> list[dict[str, Any]]:
    """Every stored outcome of SIGNALS (numbered ones), as signal_outcome payloads, in signal then horizon order;
    a signal marked unscored gives one {"epoch", "seq", "id", "unscored": reason} instead."""
    numbered = [s for s in signals if isinstance(s.get("seq"), int) and isinstance(s.get("epoch"), str)]
    pipe = client.pipeline(transaction=False)
    for signal in numbered:
        pipe.hmget(outcome_key(signal["epoch"], signal["seq"]), ["unscored", *(str(h) for h in horizons)])
    found = []
    for signal, (unscored, *values) in zip(numbered, pipe.execute()):
        if unscored is not None:
            found.append({"epoch": signal["epoch"], "seq": signal["seq"], "id": signal.get("id"), "unscored": unscored})
        for h, value in zip(horizons, values):
            if value is not None:
                found.append(outcome_payload(signal["epoch"], signal["seq"], signal.get("id"), h, float(value)))
    return found


def outcome_payload(epoch: str, seq: int, signal_id: str | None, h: int, r: float) -> dict[str, Any]:
    """The signal_outcome event's payload."""
    return {"epoch": epoch, "seq": seq, "id": signal_id, "h": h, "r": r}


def encode_number(value: float) -> str:
    """A float as Redis stores it: repr, which reads back exactly."""
    if not math.isfinite(value):
        raise ValueError(f"outcome {value!r} is not a finite number")
    return repr(float(value))


def decode_announcement(raw: bytes, max_bytes: int = 1024) -> tuple[str, int, int]:
    """(epoch, seq, h) named by an outcome announcement; raise ValueError saying what is wrong with it."""
    from backend.signal_schema import EPOCH_RE, MAX_SEQ, decode_json

    if len(raw) > max_bytes:
        raise ValueError(f"outcome announcement of {len(raw)} bytes exceeds {max_bytes}")
    message = decode_json(raw, "outcome announcement")
    if not isinstance(message, dict):
        raise ValueError("outcome announcement must be a JSON object")
    epoch, seq, h = message.get("epoch"), message.get("seq"), message.get("h")
    if not (isinstance(epoch, str) and EPOCH_RE.fullmatch(epoch)):
        raise ValueError("outcome announcement has no valid epoch")
    for name, value, hi in (("seq", seq, MAX_SEQ), ("h", h, 10**6)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ValueError(f"outcome announcement has no valid {name}")
    return epoch, cast(int, seq), cast(int, h)  # both checked by the loop above


def announcement(epoch: str, seq: int, h: int) -> str:
    """What the worker publishes on the outcome channel: the outcome's identity (the relay reads r from Redis)."""
    return json.dumps({"epoch": epoch, "seq": seq, "h": h})
