"""The bars the scan keeps for charts (docs/architecture.md, "Charts and outcomes"): their stored form, written
by the worker (tasks/charts_store.py) and read by GET /api/candles.

Per symbol × timeframe, a Redis list of bar records, newest last, capped at CHART_MAX_BARS: each record is one
JSON array `[open ms, open, high, low, close, volume, series values…]`, the series in the order of the pair's
layout (null where a series is undefined). A bar is appended once, when the scan first sees it closed, with
the values its strategies computed at that bar, so a 1,000-bar chart costs one short RPUSH per new bar.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import redis

from backend.signal_schema import chart_key, chart_meta_key

BAR_FIELDS = ("time", "open", "high", "low", "close", "volume")


def layout_json(series: Sequence[tuple[str, str]], panes: dict[str, dict[str, str]]) -> str:
    """The layout of a pair's records: the (strategy spec, series name) of each value after the bar, and panes."""
    return json.dumps({"series": [list(item) for item in series], "panes": panes}, separators=(",", ":"))


def bar_record(values: Sequence[float]) -> str:
    """One stored record: the bar's fields then its series values, NaN stored as null."""
    return json.dumps([v if math.isfinite(v) else None for v in values], separators=(",", ":"))


class ChartNotFound(LookupError):
    """The scan keeps no bars for that symbol and timeframe."""


def chart_version(client: redis.Redis, symbol: str, timeframe: str) -> tuple[str, str]:
    """(last open ms, layout) of the pair's stored bars; raise ChartNotFound when it has none."""
    last, layout = client.hmget(chart_meta_key(timeframe, symbol), ["last", "layout"])
    if last is None or layout is None:
        raise ChartNotFound(f"no candles kept for symbol={symbol} timeframe={timeframe}: the scan does not cover it")
    return str(last), str(layout)  # a decoded client (make_redis)


def etag(symbol: str, timeframe: str, limit: int, last: str, layout: str) -> str:
    """An ETag for the answer: the stored bars only change when a new one is appended or the layout changes."""
    return hashlib.sha1(f"{symbol}\n{timeframe}\n{limit}\n{last}\n{layout}".encode()).hexdigest()[:20]


def read_chart(client: redis.Redis, symbol: str, timeframe: str, limit: int) -> dict[str, Any]:
    """The latest LIMIT bars of the pair with their series, in the shape of GET /api/candles."""
    pipe = client.pipeline(transaction=False)
    pipe.hget(chart_meta_key(timeframe, symbol), "layout")
    pipe.lrange(chart_key(timeframe, symbol), -limit, -1)
    layout_raw, records = pipe.execute()
    if layout_raw is None:
        raise ChartNotFound(f"no candles kept for symbol={symbol} timeframe={timeframe}: the scan does not cover it")
    layout = json.loads(layout_raw)
    rows = [json.loads(record) for record in records]
    width = len(BAR_FIELDS) + len(layout["series"])
    rows = [row for row in rows if isinstance(row, list) and len(row) == width]  # a layout change mid-read
    candles = [dict(zip(BAR_FIELDS, row)) for row in rows]
    indicators: dict[str, dict[str, list[float | None]]] = {}
    for column, (spec, name) in enumerate(layout["series"], start=len(BAR_FIELDS)):
        indicators.setdefault(spec, {})[name] = [row[column] for row in rows]
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": candles,
        "indicators": indicators,
        "panes": layout["panes"],
    }


def read_closes(client: redis.Redis, symbol: str, timeframe: str) -> tuple[list[int], list[float]]:
    """(open ms, close) of every stored bar of the pair, oldest first."""
    rows = [json.loads(record) for record in client.lrange(chart_key(timeframe, symbol), 0, -1)]
    return [int(row[0]) for row in rows], [float(row[4]) for row in rows]
