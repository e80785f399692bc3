"""What the scan keeps besides signals (docs/architecture.md, "Charts and outcomes"): the latest closed bars of
each symbol × timeframe with the strategies' series, and the outcomes of earlier signals as their bars close."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import redis

from backend import history
from backend.charts import bar_record, layout_json, read_closes
from backend.outcomes import announcement, encode_number, late_reason, outcomes_at, signal_bar_ms, signal_ms
from backend.settings import Settings
from backend.signal_schema import (
    CHART_MAX_BARS,
    CHART_TTL_S,
    EPOCH_KEY,
    OUTCOME_CURSOR_KEY,
    OUTCOME_PENDING_PAIRS_KEY,
    OUTCOME_PENDING_PREFIX,
    OUTCOME_TTL_S,
    STATS_INDEX_PREFIX,
    STATS_NOT_COUNTED_PREFIX,
    STATS_OUTSIDE_INDEX_PREFIX,
    STATS_TTL_S,
    chart_key,
    chart_meta_key,
    outcome_channel,
    outcome_key,
    outside_stats_key,
    signal_id,
    stats_key,
)
from tasks.market import Candles
from tasks.market.candles import timeframe_ms

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

# A signal becomes pending once: HSETNX of its id on its outcome hash is the claim. A late signal (ARGV[10], or its
# first horizon's bar already kept: meta `last` >= ARGV[11]) is only marked unscored, with the reason. Else it is
# counted in its stats entry (ARGV[9] in the index KEYS[4]) unless that entry is new and the entries of both
# indexes (KEYS[4], KEYS[7]) reach ARGV[13]: then it is scored but not counted (KEYS[8] counts those), and its
# pending member is ARGV[14], which names no stats.
REGISTER_LUA = """
if redis.call('HSETNX', KEYS[1], 'id', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'sym', ARGV[2], 'strategy', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
local late = ARGV[10]
if late == '' and ARGV[11] ~= '' and tonumber(redis.call('HGET', KEYS[6], 'last') or '-1') >= tonumber(ARGV[11]) then
  late = ARGV[12]
end
if late ~= '' then
  redis.call('HSET', KEYS[1], 'unscored', late)
  return 3
end
local member, counted = ARGV[4], 1
if redis.call('SISMEMBER', KEYS[4], ARGV[9]) == 0
    and redis.call('SCARD', KEYS[4]) + redis.call('SCARD', KEYS[7]) >= tonumber(ARGV[13]) then
  redis.call('INCR', KEYS[8])
  redis.call('EXPIRE', KEYS[8], ARGV[7])
  member, counted = ARGV[14], 2
else
  redis.call('HINCRBY', KEYS[3], '*|signals', 1)
  redis.call('HINCRBY', KEYS[3], ARGV[2] .. '|signals', 1)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  redis.call('SADD', KEYS[4], ARGV[9])
  redis.call('EXPIRE', KEYS[4], ARGV[7])
end
redis.call('ZADD', KEYS[2], ARGV[5], member)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[5], ARGV[8])
redis.call('EXPIRE', KEYS[5], ARGV[6])
return counted
"""

# A signal leaves its pair's pending set; the pair leaves the set of pairs with pending signals with its last one.
DONE_LUA = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
"""

# Store each outcome once (HSETNX), count it in its stats entry's totals and the symbol's (unless ARGV[9] is '0':
# the entry was refused by STATS_MAX_ENTRIES), and announce it.
RECORD_LUA = """
local recorded = 0
for i = 10, #ARGV, 4 do
  local h, r = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', KEYS[1], h, r) == 1 then
    if ARGV[9] == '1' then
      for _, scope in ipairs({'*', ARGV[3]}) do
        redis.call('HINCRBY', KEYS[2], scope .. '|n|' .. h, 1)
        redis.call('HINCRBYFLOAT', KEYS[2], scope .. '|sum|' .. h, r)
        redis.call('HINCRBY', KEYS[2], scope .. '|hits|' .. h, ARGV[i + 2])
      end
    end
    redis.call('PUBLISH', ARGV[4], ARGV[i + 3])
    recorded = recorded + 1
  end
end
if ARGV[9] == '1' then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
-- The pending entry names the horizons already scored, so later scans only look at the others.
redis.call('ZREM', KEYS[3], ARGV[5])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
elseif redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[8])
end
return recorded
"""


SCRIPTS = (APPEND_LUA, REGISTER_LUA, RECORD_LUA, DONE_LUA)
BATCH_PAIRS = 100  # pairs per round trip
IDLE_FLUSH_S = 0.02  # the scan handed over no pair for this long: write what is queued


@dataclass
class PairWork:
    """One pair's bars handed over by the scan, with the command appending its new ones (None: nothing new)."""

    symbol: str
    timeframe: str
    candles: Candles
    series: list = field(default_factory=list)
    append: tuple | None = None

    @property
    def pair(self) -> str:
        """ "timeframe:symbol", as the outcome keys name a pair."""
        return f"{self.timeframe}:{self.symbol}"


class ChartKeeper:
    """Called by the scan once per (symbol, timeframe, candles): keeps the bars and scores pending signals.

    Signals of any origin in history (scan, HTTP, CLI) are scored when their symbol and timeframe are scanned and
    they name a strategy and a bar_time: they are routed from history to the pending set of their pair when the
    scan first sees a new bar, and scored from the closes of the pair as each horizon's bar closes. A signal
    emitted after its first horizon's bar closed is marked unscored instead. The scan's own signals (SCAN_SOURCE,
    one of its strategies, the id the scan derives) are counted under their strategy; any other under its source
    and strategy; at most MAX_ENTRIES entries per epoch.
    """

    def __init__(
        self,
        client: redis.Redis,
        strategies: Sequence,
        symbols: Iterable[str],
        timeframes: Iterable[str],
        horizons: Sequence[int],
        signal_channel: str,
        *,
        scan_source: str,
        max_entries: int = Settings.stats_max_entries,
    ):
        """Bind the Redis client and what the scan covers; the layout of the stored series is fixed here."""
        self.client = client
        self.strategies = tuple(strategies)
        self.specs = frozenset(s.spec for s in self.strategies)
        self.scan_source = scan_source
        self.max_entries = max_entries
        self._full_logged: set[str] = set()  # the epochs whose stats were found full (logged once each)
        self.symbols = frozenset(symbols)
        self.timeframes = frozenset(timeframes)
        self.horizons = tuple(horizons)
        self.channel = outcome_channel(signal_channel)
        self.max_bars = CHART_MAX_BARS
        self.columns = [(s, name) for s in self.strategies for name in s.panes()]
        columns = [(s.spec, name) for s, name in self.columns]
        self.layout = layout_json(columns, {s.spec: s.panes() for s in self.strategies})
        self._sha = {script: hashlib.sha1(script.encode()).hexdigest() for script in SCRIPTS}
        self._stored: dict[tuple[str, str], int] = {}  # the newest bar this process stored per pair
        self._routed: dict[str, int] = {}  # per timeframe, the newest bar at which history was routed
        self._routed_at = float("-inf")
        self._pending_pairs: set[str] = set()  # "<timeframe>:<symbol>" of the pairs with pending signals
        self._queue: list[PairWork] = []
        self._queued_at = 0.0
        self._pending_work = threading.Condition()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def keep(self, symbol: str, timeframe: str, candles: Candles, series: dict | None = None) -> None:
        """Queue the pair's new bars and the scoring of its pending signals; a failure is logged, never raised.

        SERIES: each strategy's `series(candles)` when the scan has them already (computed here otherwise).

        Pairs are written BATCH_PAIRS at a time, one round trip each batch; the rest as soon as the scan stops
        handing over pairs for IDLE_FLUSH_S (a thread of this keeper), or by flush().
        """
        if len(candles) == 0:
            return
        try:
            work = self._prepare(symbol, timeframe, candles, series or {})
        except redis.RedisError as exc:
            log.warning("chart of %s %s not kept: %s", symbol, timeframe, exc)
            return
        except Exception:  # charts and outcomes must never stop the scan's signals
            log.exception("chart of %s %s not kept", symbol, timeframe)
            return
        with self._pending_work:
            self._queue.append(work)
            self._queued_at = time.monotonic()
            full = len(self._queue) >= BATCH_PAIRS
            if len(self._queue) == 1:  # the flusher sleeps until there is work: wake it once per batch
                self._pending_work.notify()
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._flush_when_idle, name="chart-keeper", daemon=True)
            self._flusher.start()
        if full:
            self.flush()

    def _prepare(self, symbol: str, timeframe: str, candles: Candles, series: dict) -> PairWork:
        newest = int(candles.open_time[-1])
        if newest > self._routed.get(timeframe, -1) or time.monotonic() - self._routed_at > ROUTE_EVERY_S:
            self.route()
            self._routed[timeframe] = newest
            self._routed_at = time.monotonic()
        work = PairWork(symbol, timeframe, candles)
        anchor = self._stored.get((timeframe, symbol))
        if anchor is None or anchor < newest:
            computed = {s: series[s] if s in series else s.series(candles) for s in self.strategies}
            work.series = [computed[s][name] for s, name in self.columns]
            start = 0 if anchor is None else int(np.searchsorted(candles.open_time, anchor, side="left"))
            work.append = self._append_command(work, start, anchored=anchor is not None)
        self._stored[(timeframe, symbol)] = newest  # undone if the write fails
        return work

    def _append_command(self, work: PairWork, start: int, anchored: bool) -> tuple:
        keys = [chart_key(work.timeframe, work.symbol), chart_meta_key(work.timeframe, work.symbol)]
        return self._script(APPEND_LUA, keys, self._append_args(work.candles, work.series, start, anchored))

    def flush(self) -> None:
        """Write every queued pair now."""
        with self._flush_lock:
            with self._pending_work:
                batch, self._queue = self._queue, []
            if not batch:
                return
            try:
                self._write(batch)
            except Exception as exc:  # logged; the next scan sends these pairs' whole windows
                for work in batch:
                    self._stored.pop((work.timeframe, work.symbol), None)
                if isinstance(exc, redis.RedisError):
                    log.warning("charts of %d pairs not kept: %s", len(batch), exc)
                else:
                    log.exception("charts of %d pairs not kept", len(batch))

    def _flush_when_idle(self) -> None:
        while True:
            with self._pending_work:
                while not self._queue or time.monotonic() - self._queued_at < IDLE_FLUSH_S:
                    self._pending_work.wait(IDLE_FLUSH_S if self._queue else None)
            self.flush()

    def _write(self, batch: list[PairWork]) -> None:
        """Append the bars of BATCH and read their pending signals in one round trip, then score those."""
        commands: list[tuple] = []
        with_pending = self._pending_pairs  # route() replaces it, maybe meanwhile (it runs in the scan's thread)
        for work in batch:
            if work.append is not None:
                commands.append(work.append)
            if work.pair in with_pending:
                commands.append(("zrange", OUTCOME_PENDING_PREFIX + work.pair, 0, -1, False, True))
        replies = iter(self._run(commands))
        refills, scoring = [], []
        for work in batch:
            if work.append is not None and next(replies) == 0:  # the store does not reach our anchor
                refills.append(self._append_command(work, 0, anchored=False))
            if work.pair not in with_pending:
                continue
            pending = next(replies)
            if not pending:  # its pending set expired: the pair leaves the set of pairs to look at
                scoring.append(self._done(OUTCOME_PENDING_PREFIX + work.pair, "", work.pair))
            else:
                scoring += self._score(work.symbol, work.timeframe, work.candles, pending)
        if refills or scoring:
            self._run(refills + scoring)

    def _append_args(self, candles: Candles, series: list, start: int, anchored: bool) -> list:
        args: list = [self.layout, self.max_bars, CHART_TTL_S, "1" if anchored else "0"]
        columns = [candles.open_time, candles.open, candles.high, candles.low, candles.close, candles.volume]
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
            commands = [self._registration(signal, current) for _seq, signal in entries]
            replies = self._run([c for c in commands if c is not None])
            registered += sum(reply in (1, 2) for reply in replies)
            if 2 in replies and current not in self._full_logged:
                self._full_logged.add(current)
                log.warning(
                    "stats full: %d entries in epoch %s (STATS_MAX_ENTRIES); signals of new strategies or sources"
                    " are scored but not counted",
                    self.max_entries,
                    current,
                )
            after = entries[-1][0]
            self.client.set(OUTCOME_CURSOR_KEY, f"{current} {after}", ex=OUTCOME_TTL_S)
        self._pending_pairs = self.client.smembers(OUTCOME_PENDING_PAIRS_KEY)
        return registered

    def _registration(self, signal: dict | None, epoch: str) -> tuple | None:
        """The command registering SIGNAL as pending (or unscored when late), None when the scan cannot score it."""
        if signal is None or signal.get("epoch") != epoch or not isinstance(signal.get("seq"), int):
            return None
        symbol, timeframe, strategy = signal.get("symbol"), signal.get("timeframe"), signal.get("strategy")
        when = signal_bar_ms(signal)
        if symbol not in self.symbols or timeframe not in self.timeframes or not isinstance(strategy, str):
            return None
        if when is None or not strategy:
            return None
        seq, pair, bar_ms = signal["seq"], f"{timeframe}:{symbol}", timeframe_ms(timeframe)
        first = min(self.horizons)
        closed_ms = when + (first + 1) * bar_ms  # when the first horizon's bar closed
        late = ""
        if self._is_scan_signal(signal, symbol, timeframe, strategy, when):
            # The scan's clock is its bars (a replay's are years old): late when that bar was kept already.
            counted_under, index_key, other_index = strategy, STATS_INDEX_PREFIX, STATS_OUTSIDE_INDEX_PREFIX
            stats = stats_key(epoch, strategy)
            kept_bar = str(when + first * bar_ms)
        else:
            counted_under = json.dumps([str(signal.get("source", "")), strategy], ensure_ascii=False)
            index_key, other_index = STATS_OUTSIDE_INDEX_PREFIX, STATS_INDEX_PREFIX
            stats = outside_stats_key(epoch, counted_under)
            kept_bar = ""
            emitted = signal_ms(signal.get("emitted_at"))
            if emitted is None or emitted >= closed_ms:
                late = late_reason(first, closed_ms)
        member = json.dumps([epoch, seq, signal.get("id"), signal["type"], strategy, [], stats])
        uncounted = json.dumps([epoch, seq, signal.get("id"), signal["type"], strategy, [], ""])
        keys = [
            outcome_key(epoch, seq),
            OUTCOME_PENDING_PREFIX + pair,
            stats,
            index_key + epoch,
            OUTCOME_PENDING_PAIRS_KEY,
            chart_meta_key(timeframe, symbol),
            other_index + epoch,
            STATS_NOT_COUNTED_PREFIX + epoch,
        ]
        args = [str(signal.get("id")), symbol, strategy, member, when, OUTCOME_TTL_S, STATS_TTL_S, pair]
        args += [counted_under, late, kept_bar, late_reason(first, closed_ms), self.max_entries, uncounted]
        return self._script(REGISTER_LUA, keys, args)

    def _is_scan_signal(self, signal: dict, symbol: str, timeframe: str, strategy: str, when: int) -> bool:
        """True for a signal the scan made: its source, one of its strategies, and the id the scan derives."""
        if signal.get("source") != self.scan_source or strategy not in self.specs:
            return False
        return signal.get("id") == signal_id(symbol, strategy, timeframe, when, signal["type"])

    def _score(self, symbol: str, timeframe: str, candles: Candles, pending: list) -> list[tuple]:
        """The commands recording the outcomes of PENDING signals whose horizon bars are closed, and dropping
        those complete or never scorable."""
        times, close = candles.open_time, candles.close
        stored = None
        commands: list[tuple] = []
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
                commands.append(
                    self._done(pending_key, member, f"{timeframe}:{symbol}")
                )  # not a bar of this pair (or gone from the store): never scorable
                continue
            epoch, seq, known_id, kind, strategy, *rest = json.loads(member)
            done = rest[0] if rest else []
            # Members written before outside signals had entries of their own name no stats key: the strategy's.
            stats = rest[1] if len(rest) > 1 else stats_key(epoch, strategy)
            outcomes = outcomes_at(kind, found_close, index, [h for h in self.horizons if h not in done])
            if not outcomes:
                continue
            scored = sorted([*done, *outcomes])
            left = (
                json.dumps([epoch, seq, known_id, kind, strategy, scored, stats])
                if len(scored) < len(self.horizons)
                else ""
            )
            # An entry refused by STATS_MAX_ENTRIES: the outcome is stored and announced, and counted nowhere.
            counted = "1" if stats else "0"
            keys = [outcome_key(epoch, seq), stats or outcome_key(epoch, seq), pending_key, OUTCOME_PENDING_PAIRS_KEY]
            args: list = [OUTCOME_TTL_S, STATS_TTL_S, symbol, self.channel, member, left, when, f"{timeframe}:{symbol}"]
            args.append(counted)
            for h, r in outcomes.items():
                args += [h, encode_number(r), int(r > 0), announcement(epoch, seq, h)]
            commands.append(self._script(RECORD_LUA, keys, args))
        return commands

    def _done(self, pending_key: str, member: str, pair: str) -> tuple:
        return self._script(DONE_LUA, [pending_key, OUTCOME_PENDING_PAIRS_KEY], [member, pair])

    def _script(self, script: str, keys: list[str], args: list) -> tuple:
        """The EVALSHA command of SCRIPT (run by _run)."""
        return ("evalsha", self._sha[script], len(keys), *keys, *args)

    def _run(self, commands: list[tuple]) -> list:
        """COMMANDS ((method, *args)) in one round trip; the scripts loaded again when Redis lost them (a restart).

        By SHA: redis-py's Script in a pipeline asks SCRIPT EXISTS first, a second round trip per pair.
        """
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for name, *args in commands:
                getattr(pipe, name)(*args)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                for script in SCRIPTS:
                    self.client.script_load(script)
        return []
