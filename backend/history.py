"""Reads of the signal history stream: cursor, epoch and ranges by seq."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import redis
import redis.asyncio

from backend.signal_schema import (
    EPOCH_KEY,
    HISTORY_KEY,
    HISTORY_SYMBOL_PREFIX,
    HISTORY_SYMBOL_START_PREFIX,
    SEQ_KEY,
    InvalidSignal,
    new_epoch,
    validate_signal,
)


def ensure_epoch(client: redis.Redis) -> str:
    """The current epoch, created when this Redis has none yet."""
    client.set(EPOCH_KEY, new_epoch(), nx=True)
    return cast(str, client.get(EPOCH_KEY))  # set just above; a decoded client (make_redis) replies str


async def aensure_epoch(client: redis.asyncio.Redis) -> str:
    """ensure_epoch on an asyncio client."""
    await client.set(EPOCH_KEY, new_epoch(), nx=True)
    return cast(str, await client.get(EPOCH_KEY))  # set just above; a decoded client (make_async_redis) replies str


def cursor(client: redis.Redis) -> tuple[str | None, int]:
    """(epoch, latest seq) as stored now."""
    epoch, seq = client.mget(EPOCH_KEY, SEQ_KEY)
    return (None if epoch is None else str(epoch)), int(seq or 0)


async def acursor(client: redis.asyncio.Redis) -> tuple[str | None, int]:
    """cursor on an asyncio client."""
    epoch, seq = await client.mget(EPOCH_KEY, SEQ_KEY)
    return cast(str | None, epoch), int(seq or 0)  # a decoded client (make_async_redis) replies str


def decode_entry(fields: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    """The signal stored in a history entry, or None when it is not a valid one (it is then skipped)."""
    if fields is None:
        return None
    try:
        return validate_signal(json.loads(fields["sig"]))
    except (KeyError, TypeError, ValueError, RecursionError, InvalidSignal):
        return None


def _bounds(after: int, upto: int | None) -> tuple[str, str]:
    """The XRANGE bounds of after < seq <= upto (no upper bound when None)."""
    return f"({after}-0", "+" if upto is None else f"{upto}-0"


def _decode_entries(entries: Any) -> list[tuple[int, dict[str, Any] | None]]:
    """[(seq, signal or None)] of XRANGE ENTRIES."""
    return [(int(str(entry_id).split("-")[0]), decode_entry(fields)) for entry_id, fields in entries]


def read_entries(
    client: redis.Redis, after: int, upto: int | None = None, count: int = 500
) -> list[tuple[int, dict[str, Any] | None]]:
    """[(seq, signal or None if invalid)] retained with after < seq <= upto (no upper bound when None), oldest first."""
    return _decode_entries(client.xrange(HISTORY_KEY, *_bounds(after, upto), count=count) or [])


async def aread_entries(
    client: redis.asyncio.Redis, after: int, upto: int | None = None, count: int = 500
) -> list[tuple[int, dict[str, Any] | None]]:
    """read_entries on an asyncio client."""
    return _decode_entries(await client.xrange(HISTORY_KEY, *_bounds(after, upto), count=count) or [])


def read_range(client: redis.Redis, after: int, upto: int | None = None, count: int = 500) -> list[dict[str, Any]]:
    """The valid retained signals with after < seq <= upto (no upper bound when None), oldest first."""
    return [signal for _seq, signal in read_entries(client, after, upto, count) if signal is not None]


def recent(client: redis.Redis, since: int = 0, symbol: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest LIMIT retained signals with seq > since (of SYMBOL if given), oldest first.

    Of one symbol, through its index (docs/architecture.md, "Charts and outcomes"): a symbol with no signal costs
    a few commands, whatever the history's length.
    """
    if symbol is None:
        return _scan(client, since, None, limit, "+")
    epoch = cast("str | None", client.get(EPOCH_KEY))  # a decoded client (make_redis) replies str
    if epoch is None:
        return []
    start = client.get(HISTORY_SYMBOL_START_PREFIX + epoch)
    if start is None:  # no publish since the index exists: the history predates it
        return _scan(client, since, symbol, limit, "+")
    found = _indexed(client, HISTORY_SYMBOL_PREFIX + f"{epoch}:{symbol}", since, limit)
    older = int(start) - 1  # entries up to here were written before the index: scanned, while retained
    if len(found) < limit and older > since and client.xrange(HISTORY_KEY, f"({since}-0", f"{older}-0", count=1):
        found = _scan(client, since, symbol, limit - len(found), f"{older}-0") + found
    return found


def _indexed(client: redis.Redis, index: str, since: int, limit: int) -> list[dict[str, Any]]:
    """The newest LIMIT valid signals with seq > since named by the sorted set INDEX, oldest first."""
    found: list[dict[str, Any]] = []
    upper = "+inf"
    while len(found) < limit:
        # A decoded client (make_redis) replies str.
        seqs = cast("list[str]", client.zrevrangebyscore(index, upper, f"({since}", start=0, num=limit - len(found)))
        if not seqs:
            break
        pipe = client.pipeline(transaction=False)
        for seq in seqs:
            pipe.xrange(HISTORY_KEY, f"{seq}-0", f"{seq}-0")
        for entries in pipe.execute():
            signal = decode_entry(entries[0][1]) if entries else None  # gone: trimmed since the index was read
            if signal is not None:
                found.append(signal)
        upper = f"({seqs[-1]}"
    found.reverse()
    return found


def _scan(client: redis.Redis, since: int, symbol: str | None, limit: int, end: str) -> list[dict[str, Any]]:
    """The newest LIMIT valid signals with since < seq <= END (of SYMBOL if given), read back from END."""
    found: list[dict[str, Any]] = []
    while len(found) < limit:
        batch = cast(  # a decoded client (make_redis) replies str
            "list[tuple[str, dict[str, str]]]", client.xrevrange(HISTORY_KEY, end, f"({since}-0", count=max(limit, 200))
        )
        if not batch:
            break
        for _entry_id, fields in batch:
            if symbol is None or fields.get("sym") == symbol:
                signal = decode_entry(fields)
                if signal is None:
                    continue
                found.append(signal)
                if len(found) == limit:
                    break
        end = f"({batch[-1][0]}"
    found.reverse()
    return found
