"""The chart store (docs/architecture.md, "Charts and outcomes"): appends each pair's new closed bars with the
strategies' series to `qs:chart:*`, the records backend/charts.py reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from backend.charts import bar_record, layout_json
from backend.signal_schema import CHART_MAX_BARS, CHART_TTL_S, chart_key, chart_meta_key
from tasks.market import Candles
from tasks.redis_scripts import Command, LuaScript
from tasks.strategies import Strategy

# Append the bars after the pair's last stored one. With `anchored` the first bar sent is the one the caller
# believes is stored last (the anchor): when the store does not reach it (Redis lost data, or a new layout),
# nothing is appended and 0 is returned, so the caller sends its whole window instead of leaving a gap.
APPEND = LuaScript("""
-- KEYS and ARGV as append_command() builds them:
local bars, meta = KEYS[1], KEYS[2]   -- the pair's list of bar records; its hash of 'layout' and 'last' (open ms)
local layout = ARGV[1]                -- the records' layout (JSON)
local max_bars = tonumber(ARGV[2])    -- the list is trimmed to the newest max_bars
local ttl_s = ARGV[3]                 -- both keys expire after ttl_s
local anchored = ARGV[4] == '1'       -- the first bar sent is the caller's anchor
local FIRST_BAR = 5                   -- then per bar, oldest first: its open ms, its record
local first_open = tonumber(ARGV[FIRST_BAR])

if redis.call('HGET', meta, 'layout') ~= layout then
  redis.call('DEL', bars, meta)
  redis.call('HSET', meta, 'layout', layout)
end
local last = tonumber(redis.call('HGET', meta, 'last') or '-1')
if anchored and last < first_open then return 0 end
local newest = nil
for i = FIRST_BAR, #ARGV, 2 do
  if tonumber(ARGV[i]) > last then
    redis.call('RPUSH', bars, ARGV[i + 1])
    last = tonumber(ARGV[i])
    newest = ARGV[i]
  end
end
if newest then
  redis.call('HSET', meta, 'last', newest)
  redis.call('LTRIM', bars, -max_bars, -1)
end
redis.call('EXPIRE', bars, ttl_s)
redis.call('EXPIRE', meta, ttl_s)
return 1
""")

SCRIPTS = (APPEND,)


@dataclass(frozen=True)
class BarsAppend:
    """The named arguments of APPEND: one pair's bars (open ms, record), oldest first."""

    timeframe: str
    symbol: str
    layout: str
    bars: Sequence[tuple[int, str]]
    anchored: bool
    max_bars: int = CHART_MAX_BARS
    ttl_s: int = CHART_TTL_S


def append_command(append: BarsAppend) -> Command:
    """APPEND's command: KEYS and ARGV in the order the script's header names them."""
    keys = [chart_key(append.timeframe, append.symbol), chart_meta_key(append.timeframe, append.symbol)]
    args: list[str | int] = [append.layout, append.max_bars, append.ttl_s, "1" if append.anchored else "0"]
    for open_ms, record in append.bars:
        args += [open_ms, record]
    return APPEND.command(keys, args)


@dataclass(frozen=True)
class PairBars:
    """A pair's closed bars and series values as handed over by the scan, with the command appending the new ones."""

    symbol: str
    timeframe: str
    candles: Candles
    series: list[np.ndarray]
    command: Command


class ChartStore:
    """Keeps the latest closed bars of each symbol × timeframe with the strategies' series, in one fixed layout."""

    def __init__(self, strategies: Sequence[Strategy]) -> None:
        """Fix the layout of the stored series from STRATEGIES."""
        self.strategies = tuple(strategies)
        self.max_bars = CHART_MAX_BARS
        self.columns = [(s, name) for s in self.strategies for name in s.panes()]
        columns = [(s.spec, name) for s, name in self.columns]
        self.layout = layout_json(columns, {s.spec: s.panes() for s in self.strategies})
        self._stored: dict[tuple[str, str], int] = {}  # the newest bar this process stored per pair

    def new_bars(
        self, symbol: str, timeframe: str, candles: Candles, series: Mapping[Strategy, dict[str, np.ndarray]]
    ) -> PairBars | None:
        """The pair's bars after the newest one stored (None: nothing new); SERIES computed here when missing.

        The newest bar counts as stored from now on: forget() undoes that when the write fails.
        """
        newest = int(candles.open_time[-1])
        anchor = self._stored.get((timeframe, symbol))
        bars = None
        if anchor is None or anchor < newest:
            computed = {s: series[s] if s in series else s.series(candles) for s in self.strategies}
            values = [computed[s][name] for s, name in self.columns]
            start = 0 if anchor is None else int(np.searchsorted(candles.open_time, anchor, side="left"))
            command = self._append(symbol, timeframe, candles, values, start, anchored=anchor is not None)
            bars = PairBars(symbol, timeframe, candles, values, command)
        self._stored[(timeframe, symbol)] = newest
        return bars

    def whole_window(self, bars: PairBars) -> Command:
        """The command appending all of BARS' window: the store did not reach the anchor."""
        return self._append(bars.symbol, bars.timeframe, bars.candles, bars.series, 0, anchored=False)

    def forget(self, symbol: str, timeframe: str) -> None:
        """The pair's write failed: the next call sends its whole window."""
        self._stored.pop((timeframe, symbol), None)

    def _append(
        self, symbol: str, timeframe: str, candles: Candles, series: list[np.ndarray], start: int, anchored: bool
    ) -> Command:
        """The APPEND command of the bars of CANDLES (with SERIES) from index START."""
        columns = [candles.open_time, candles.open, candles.high, candles.low, candles.close, candles.volume]
        rows = np.column_stack([*columns, *series])[start:] if series else np.column_stack(columns)[start:]
        bars = []
        for t, row in zip(columns[0][start:].tolist(), rows.tolist()):
            row[0] = t
            bars.append((t, bar_record(row)))
        return append_command(BarsAppend(timeframe, symbol, self.layout, bars, anchored, self.max_bars))
