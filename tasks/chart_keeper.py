"""What the scan keeps besides signals (docs/architecture.md, "Charts and outcomes"): the latest closed bars of
each symbol × timeframe with the strategies' series, and the outcomes of earlier signals as their bars close."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence

import numpy as np
import redis

from backend import history
from backend.charts import bar_record, layout_json, read_closes
from backend.outcomes import announcement, encode_number, outcomes_at, signal_bar_ms
from backend.signal_schema import (
    CHART_MAX_BARS,
    CHART_TTL_S,
    EPOCH_KEY,
    OUTCOME_CURSOR_KEY,
    OUTCOME_PENDING_PREFIX,
    OUTCOME_TTL_S,
    STATS_INDEX_PREFIX,
    STATS_TTL_S,
    chart_key,
    chart_meta_key,
    outcome_channel,
    outcome_key,
    stats_key,
)
from tasks.market import Candles

log = logging.getLogger(__name__)

ROUTE_BATCH = 1000
ROUTE_MAX_BATCHES = 20  # per call: a long backlog is routed over several scans
ROUTE_EVERY_S = 1.0  # besides at each new bar, so the signals of a market that stopped are counted too

# Append the bars after the pair's last stored one. With ARGV[4] = "1" the first bar sent is the one the caller
# believes is stored last (the anchor): when the store does not reach it (Redis lost data, or a new layout),
# nothing is appended and 0 is returned, so the caller sends its whole window instead of leaving a gap.
APPEND_LUA = """
local bars, meta = KEYS[1], KEYS[2]
if redis.call('HGET', meta, 'layout') ~= ARGV[1] then
  redis.call('DEL', bars, meta)
  redis.call('HSET', meta, 'layout', ARGV[1])
end
local last = tonumber(redis.call('HGET', meta, 'last') or '-1')
if ARGV[4] == '1' and last < tonumber(ARGV[5]) then return 0 end
local newest = nil
for i = 5, #ARGV, 2 do
  if tonumber(ARGV[i]) > last then
    redis.call('RPUSH', bars, ARGV[i + 1])
    last = tonumber(ARGV[i])
    newest = ARGV[i]
  end
end
if newest then
  redis.call('HSET', meta, 'last', newest)
  redis.call('LTRIM', bars, -tonumber(ARGV[2]), -1)
end
redis.call('EXPIRE', bars, ARGV[3])
redis.call('EXPIRE', meta, ARGV[3])
return 1
"""

# A signal becomes pending once: HSETNX of its id on its outcome hash is the claim, and counts it.
REGISTER_LUA = """
if redis.call('HSETNX', KEYS[1], 'id', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'sym', ARGV[2], 'strategy', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[3], '*|signals', 1)
redis.call('HINCRBY', KEYS[3], ARGV[2] .. '|signals', 1)
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[7])
return 1
"""

# Store each outcome once (HSETNX), count it in the strategy's totals and the symbol's, and announce it.
RECORD_LUA = """
local recorded = 0
for i = 5, #ARGV, 4 do
  local h, r = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', KEYS[1], h, r) == 1 then
    for _, scope in ipairs({'*', ARGV[3]}) do
      redis.call('HINCRBY', KEYS[2], scope .. '|n|' .. h, 1)
      redis.call('HINCRBYFLOAT', KEYS[2], scope .. '|sum|' .. h, r)
      redis.call('HINCRBY', KEYS[2], scope .. '|hits|' .. h, ARGV[i + 2])
    end
    redis.call('PUBLISH', ARGV[4], ARGV[i + 3])
    recorded = recorded + 1
  end
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return recorded
"""


class ChartKeeper:
    """Called by the scan once per (symbol, timeframe, candles): keeps the bars and scores pending signals.

    Signals of any origin in history (scan, HTTP, CLI) are scored when their symbol and timeframe are scanned and
    they name a strategy and a bar_time: they are routed from history to the pending set of their pair when the
    scan first sees a new bar, and scored from the closes of the pair as each horizon's bar closes.
    """

    def __init__(
        self,
        client: redis.Redis,
        strategies: Sequence,
        symbols: Iterable[str],
        timeframes: Iterable[str],
        horizons: Sequence[int],
        signal_channel: str,
    ):
        """Bind the Redis client and what the scan covers; the layout of the stored series is fixed here."""
        self.client = client
        self.strategies = tuple(strategies)
        self.symbols = frozenset(symbols)
        self.timeframes = frozenset(timeframes)
        self.horizons = tuple(horizons)
        self.channel = outcome_channel(signal_channel)
        self.max_bars = CHART_MAX_BARS
        columns = [(s.spec, name) for s in self.strategies for name in s.series(np.ones(2))]
        self.layout = layout_json(columns, {s.spec: s.panes() for s in self.strategies})
        self._append = client.register_script(APPEND_LUA)
        self._register = client.register_script(REGISTER_LUA)
        self._record = client.register_script(RECORD_LUA)
        self._stored: dict[tuple[str, str], int] = {}  # the newest bar this process stored per pair
        self._routed: dict[str, int] = {}  # per timeframe, the newest bar at which history was routed
        self._routed_at = float("-inf")

    def keep(self, symbol: str, timeframe: str, candles: Candles) -> None:
        """Store the new bars of the pair and score its pending signals; a failure is logged, never raised."""
        if len(candles) == 0:
            return
        try:
            self._keep(symbol, timeframe, candles)
        except redis.RedisError as exc:
            log.warning("chart of %s %s not kept: %s", symbol, timeframe, exc)
        except Exception:  # charts and outcomes must never stop the scan's signals
            log.exception("chart of %s %s not kept", symbol, timeframe)

    def _keep(self, symbol: str, timeframe: str, candles: Candles) -> None:
        newest = int(candles.open_time[-1])
        if newest > self._routed.get(timeframe, -1) or time.monotonic() - self._routed_at > ROUTE_EVERY_S:
            self.route()
            self._routed[timeframe] = newest
            self._routed_at = time.monotonic()
        pair = (timeframe, symbol)
        keys = [chart_key(timeframe, symbol), chart_meta_key(timeframe, symbol)]
        columns = [candles.open_time, candles.open, candles.high, candles.low, candles.close, candles.volume]
        series = [line for s in self.strategies for line in s.series(candles).values()]
        anchor = self._stored.get(pair)
        start = 0 if anchor is None else int(np.searchsorted(candles.open_time, anchor, side="left"))
        pipe = self.client.pipeline(transaction=False)
        if anchor is None or anchor < newest:
            self._append(keys, self._append_args(columns, series, start, anchor is not None), client=pipe)
        pipe.zrange(OUTCOME_PENDING_PREFIX + f"{timeframe}:{symbol}", 0, -1, withscores=True)
        *appended, pending = pipe.execute()
        if appended and appended[0] == 0:  # the store does not reach our anchor: send the whole window
            self._append(keys, self._append_args(columns, series, 0, False))
        self._stored[pair] = newest
        if pending:
            self._score(symbol, timeframe, candles, pending)

    def _append_args(self, columns, series, start: int, anchored: bool) -> list:
        args: list = [self.layout, self.max_bars, CHART_TTL_S, "1" if anchored else "0"]
        rows = np.column_stack([*columns, *series])[start:] if series else np.column_stack(columns)[start:]
        for t, row in zip(columns[0][start:].tolist(), rows.tolist()):
            row[0] = t
            args += [t, bar_record(row)]
        return args

    def route(self) -> int:
        """Register the signals published since the last routing as pending on their pair; return how many."""
        current = self.client.get(EPOCH_KEY)
        if current is None:
            return 0
        cursor = (self.client.get(OUTCOME_CURSOR_KEY) or "").split(" ")
        after = int(cursor[1]) if len(cursor) == 2 and cursor[0] == current and cursor[1].isdigit() else 0
        registered = 0
        for _ in range(ROUTE_MAX_BATCHES):
            entries = history.read_entries(self.client, after, count=ROUTE_BATCH)
            if not entries:
                break
            pipe = self.client.pipeline(transaction=False)
            for _seq, signal in entries:
                self._register_signal(signal, current, pipe)
            registered += sum(pipe.execute())
            after = entries[-1][0]
            self.client.set(OUTCOME_CURSOR_KEY, f"{current} {after}", ex=OUTCOME_TTL_S)
        return registered

    def _register_signal(self, signal: dict | None, epoch: str, pipe) -> None:
        if signal is None or signal.get("epoch") != epoch or not isinstance(signal.get("seq"), int):
            return
        symbol, timeframe, strategy = signal.get("symbol"), signal.get("timeframe"), signal.get("strategy")
        when = signal_bar_ms(signal)
        if symbol not in self.symbols or timeframe not in self.timeframes or not isinstance(strategy, str):
            return
        if when is None or not strategy:
            return
        seq = signal["seq"]
        member = json.dumps([epoch, seq, signal.get("id"), signal["type"], strategy])
        keys = [
            outcome_key(epoch, seq),
            OUTCOME_PENDING_PREFIX + f"{timeframe}:{symbol}",
            stats_key(epoch, strategy),
            STATS_INDEX_PREFIX + epoch,
        ]
        args = [str(signal.get("id")), symbol, strategy, member, when, OUTCOME_TTL_S, STATS_TTL_S]
        self._register(keys, args, client=pipe)

    def _score(self, symbol: str, timeframe: str, candles: Candles, pending: list) -> None:
        """Record the outcomes of PENDING signals whose horizon bars are closed; drop those complete or lost."""
        times, close = candles.open_time, candles.close
        stored = None
        pipe = self.client.pipeline(transaction=False)
        pending_key = OUTCOME_PENDING_PREFIX + f"{timeframe}:{symbol}"
        for member, score in pending:
            when = int(score)
            if when > int(times[-1]):
                continue  # its bar has not closed yet
            if when < int(times[0]):
                if stored is None:
                    stored = tuple(np.asarray(a) for a in read_closes(self.client, symbol, timeframe))
                found_times, found_close = stored
            else:
                found_times, found_close = times, close
            index = int(np.searchsorted(found_times, when))
            if index >= len(found_times) or int(found_times[index]) != when:
                pipe.zrem(pending_key, member)  # not a bar of this pair (or gone from the store): never scorable
                continue
            epoch, seq, _signal_id, kind, strategy = json.loads(member)
            outcomes = outcomes_at(kind, found_close, index, self.horizons)
            if outcomes:
                args: list = [OUTCOME_TTL_S, STATS_TTL_S, symbol, self.channel]
                for h, r in outcomes.items():
                    args += [h, encode_number(r), int(r > 0), announcement(epoch, seq, h)]
                self._record([outcome_key(epoch, seq), stats_key(epoch, strategy)], args, client=pipe)
            if len(outcomes) == len(self.horizons):
                pipe.zrem(pending_key, member)
        pipe.execute()
