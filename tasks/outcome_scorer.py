"""The outcome scorer (docs/architecture.md, "Charts and outcomes"): routes the signals in history to the pending
set of their pair, scores them from the pair's closes as each horizon's bar closes, counts them in the stats and
announces each outcome on `<channel>:outcomes`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import redis

from backend import history
from backend.charts import read_closes
from backend.outcomes import announcement, encode_number, late_reason, outcomes_at, signal_bar_ms, signal_ms
from backend.settings import Settings
from backend.signal_schema import (
    EPOCH_KEY,
    OUTCOME_CURSOR_KEY,
    OUTCOME_PENDING_PAIRS_KEY,
    OUTCOME_PENDING_PREFIX,
    OUTCOME_TTL_S,
    STATS_INDEX_PREFIX,
    STATS_NOT_COUNTED_PREFIX,
    STATS_OUTSIDE_INDEX_PREFIX,
    STATS_TTL_S,
    chart_meta_key,
    outcome_channel,
    outcome_key,
    outside_stats_key,
    signal_id,
    stats_key,
)
from tasks.market import Candles
from tasks.market.candles import timeframe_ms
from tasks.redis_scripts import Command, LuaScript, run_commands
from tasks.strategies import Strategy

log = logging.getLogger(__name__)

ROUTE_BATCH = 1000
ROUTE_MAX_BATCHES = 20  # per call: a long backlog is routed over several scans

# REGISTER's replies.
ALREADY_REGISTERED, COUNTED, NOT_COUNTED, UNSCORED = 0, 1, 2, 3

# A signal becomes pending once: HSETNX of its id on its outcome hash is the claim. A late signal (`late`, or its
# first horizon's bar already kept: the chart's `last` >= `kept_bar`) is only marked unscored, with the reason.
# Else it is counted in its stats entry (`counted_under` in `stats_index`) unless that entry is new and the
# entries of both indexes reach `max_entries`: then it is scored but not counted (`not_counted` counts those),
# and its pending member is `uncounted_member`, which names no stats.
REGISTER = LuaScript("""
-- KEYS and ARGV as register_command() builds them:
local outcome = KEYS[1]                 -- the signal's outcome hash
local pending = KEYS[2]                 -- its pair's pending set (member scored by bar open ms)
local stats = KEYS[3]                   -- its stats entry
local stats_index = KEYS[4]             -- the index of the entries of its kind (scan's or outside) this epoch
local pending_pairs = KEYS[5]           -- the set of pairs with pending signals
local chart_meta = KEYS[6]              -- its pair's chart meta hash ('last': the newest kept bar)
local other_index = KEYS[7]             -- the index of the entries of the other kind
local not_counted = KEYS[8]             -- the count of signals scored but not counted this epoch
local id = ARGV[1]
local symbol = ARGV[2]
local strategy = ARGV[3]
local member = ARGV[4]                  -- its pending member when counted
local bar_ms = ARGV[5]
local outcome_ttl_s = ARGV[6]
local stats_ttl_s = ARGV[7]
local pair = ARGV[8]                    -- "<timeframe>:<symbol>"
local counted_under = ARGV[9]           -- its entry's name in stats_index
local late = ARGV[10]                   -- the reason it is late, '' when on time (or judged here)
local kept_bar = ARGV[11]               -- '' or the open ms that, once kept, makes it late with late_if_kept
local late_if_kept = ARGV[12]
local max_entries = tonumber(ARGV[13])
local uncounted_member = ARGV[14]       -- its pending member when not counted

if redis.call('HSETNX', outcome, 'id', id) == 0 then return 0 end
redis.call('HSET', outcome, 'sym', symbol, 'strategy', strategy)
redis.call('EXPIRE', outcome, outcome_ttl_s)
if late == '' and kept_bar ~= '' and tonumber(redis.call('HGET', chart_meta, 'last') or '-1') >= tonumber(kept_bar) then
  late = late_if_kept
end
if late ~= '' then
  redis.call('HSET', outcome, 'unscored', late)
  return 3
end
local counted = 1
if redis.call('SISMEMBER', stats_index, counted_under) == 0
    and redis.call('SCARD', stats_index) + redis.call('SCARD', other_index) >= max_entries then
  redis.call('INCR', not_counted)
  redis.call('EXPIRE', not_counted, stats_ttl_s)
  member, counted = uncounted_member, 2
else
  redis.call('HINCRBY', stats, '*|signals', 1)
  redis.call('HINCRBY', stats, symbol .. '|signals', 1)
  redis.call('EXPIRE', stats, stats_ttl_s)
  redis.call('SADD', stats_index, counted_under)
  redis.call('EXPIRE', stats_index, stats_ttl_s)
end
redis.call('ZADD', pending, bar_ms, member)
redis.call('EXPIRE', pending, outcome_ttl_s)
redis.call('SADD', pending_pairs, pair)
redis.call('EXPIRE', pending_pairs, outcome_ttl_s)
return counted
""")


@dataclass(frozen=True)
class Registration:
    """The named arguments of REGISTER: one signal in history to make pending (or unscored) on its pair."""

    epoch: str
    seq: int
    signal_id: str
    symbol: str
    timeframe: str
    strategy: str
    bar_ms: int
    stats_key: str
    stats_index_key: str
    other_index_key: str
    counted_under: str
    member: str
    uncounted_member: str
    late: str
    kept_bar: str
    late_if_kept: str
    max_entries: int
    outcome_ttl_s: int = OUTCOME_TTL_S
    stats_ttl_s: int = STATS_TTL_S


def register_command(r: Registration) -> Command:
    """REGISTER's command: KEYS and ARGV in the order the script's header names them."""
    pair = f"{r.timeframe}:{r.symbol}"
    keys = [
        outcome_key(r.epoch, r.seq),
        OUTCOME_PENDING_PREFIX + pair,
        r.stats_key,
        r.stats_index_key,
        OUTCOME_PENDING_PAIRS_KEY,
        chart_meta_key(r.timeframe, r.symbol),
        r.other_index_key,
        STATS_NOT_COUNTED_PREFIX + r.epoch,
    ]
    args: list[str | int] = [r.signal_id, r.symbol, r.strategy, r.member, r.bar_ms, r.outcome_ttl_s, r.stats_ttl_s]
    args.append(pair)
    args += [r.counted_under, r.late, r.kept_bar, r.late_if_kept, r.max_entries, r.uncounted_member]
    return REGISTER.command(keys, args)


# A signal leaves its pair's pending set; the pair leaves the set of pairs with pending signals with its last one.
DONE = LuaScript("""
-- KEYS and ARGV as done_command() builds them:
local pending, pending_pairs = KEYS[1], KEYS[2]   -- the pair's pending set; the set of pairs with pending signals
local member, pair = ARGV[1], ARGV[2]             -- the signal's pending member ('' for none); "<timeframe>:<symbol>"

redis.call('ZREM', pending, member)
if redis.call('ZCARD', pending) == 0 then redis.call('SREM', pending_pairs, pair) end
return 1
""")


def done_command(pair: str, member: str) -> Command:
    """DONE's command: MEMBER ('' for none) leaves the pending set of PAIR ("<timeframe>:<symbol>")."""
    return DONE.command([OUTCOME_PENDING_PREFIX + pair, OUTCOME_PENDING_PAIRS_KEY], [member, pair])


# Store each outcome once (HSETNX), count it in its stats entry's totals and the symbol's (unless the entry was
# refused by STATS_MAX_ENTRIES: no stats key), and announce it.
RECORD = LuaScript("""
-- KEYS and ARGV as record_command() builds them:
local outcome = KEYS[1]                 -- the signal's outcome hash
local stats = KEYS[2]                   -- its stats entry (the outcome hash again when not counted)
local pending = KEYS[3]                 -- its pair's pending set
local pending_pairs = KEYS[4]           -- the set of pairs with pending signals
local outcome_ttl_s = ARGV[1]
local stats_ttl_s = ARGV[2]
local symbol = ARGV[3]
local channel = ARGV[4]                 -- where each new outcome is announced
local member = ARGV[5]                  -- its pending member now
local left = ARGV[6]                    -- its pending member next ('' when every horizon is scored)
local bar_ms = ARGV[7]
local pair = ARGV[8]                    -- "<timeframe>:<symbol>"
local counted = ARGV[9] == '1'          -- count it in stats
local FIRST_OUTCOME = 10                -- then per horizon: horizon, return, hit (1/0), announcement

local recorded = 0
for i = FIRST_OUTCOME, #ARGV, 4 do
  local h, r = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', outcome, h, r) == 1 then
    if counted then
      for _, scope in ipairs({'*', symbol}) do
        redis.call('HINCRBY', stats, scope .. '|n|' .. h, 1)
        redis.call('HINCRBYFLOAT', stats, scope .. '|sum|' .. h, r)
        redis.call('HINCRBY', stats, scope .. '|hits|' .. h, ARGV[i + 2])
      end
    end
    redis.call('PUBLISH', channel, ARGV[i + 3])
    recorded = recorded + 1
  end
end
if counted then redis.call('EXPIRE', stats, stats_ttl_s) end
redis.call('EXPIRE', outcome, outcome_ttl_s)
-- The pending entry names the horizons already scored, so later scans only look at the others.
redis.call('ZREM', pending, member)
if left ~= '' then
  redis.call('ZADD', pending, bar_ms, left)
elseif redis.call('ZCARD', pending) == 0 then
  redis.call('SREM', pending_pairs, pair)
end
return recorded
""")


@dataclass(frozen=True)
class HorizonOutcome:
    """One horizon's scored return and the announcement of it."""

    horizon: int
    value: float
    announcement: str


@dataclass(frozen=True)
class Record:
    """The named arguments of RECORD: a pending signal's newly scored horizons."""

    epoch: str
    seq: int
    symbol: str
    timeframe: str
    stats_key: str  # '' when its entry was refused by STATS_MAX_ENTRIES: counted nowhere
    channel: str
    member: str
    left: str
    bar_ms: int
    outcomes: Sequence[HorizonOutcome]
    outcome_ttl_s: int = OUTCOME_TTL_S
    stats_ttl_s: int = STATS_TTL_S


def record_command(r: Record) -> Command:
    """RECORD's command: KEYS and ARGV in the order the script's header names them."""
    pair = f"{r.timeframe}:{r.symbol}"
    outcome = outcome_key(r.epoch, r.seq)
    keys = [outcome, r.stats_key or outcome, OUTCOME_PENDING_PREFIX + pair, OUTCOME_PENDING_PAIRS_KEY]
    args: list[str | int] = [r.outcome_ttl_s, r.stats_ttl_s, r.symbol, r.channel, r.member, r.left, r.bar_ms, pair]
    args.append("1" if r.stats_key else "0")
    for o in r.outcomes:
        args += [o.horizon, encode_number(o.value), int(o.value > 0), o.announcement]
    return RECORD.command(keys, args)


SCRIPTS = (REGISTER, RECORD, DONE)


class OutcomeScorer:
    """Scores the signals of the pairs the scan covers as their bars close, and counts them in the stats.

    Signals of any origin in history (scan, HTTP, CLI) are scored when their symbol and timeframe are scanned and
    they name a strategy and a bar_time: they are routed from history to the pending set of their pair, and
    scored from the closes of the pair as each horizon's bar closes. A signal emitted after its first horizon's
    bar closed is marked unscored instead. The scan's own signals (SCAN_SOURCE, one of its strategies, the id the
    scan derives) are counted under their strategy; any other under its source and strategy; at most
    max_entries entries per epoch.
    """

    def __init__(
        self,
        client: redis.Redis,
        strategies: Sequence[Strategy],
        symbols: Iterable[str],
        timeframes: Iterable[str],
        horizons: Sequence[int],
        signal_channel: str,
        *,
        scan_source: str,
        max_entries: int = Settings.stats_max_entries,
    ) -> None:
        """Bind the Redis client and what the scan covers."""
        self.client = client
        self.specs = frozenset(s.spec for s in strategies)
        self.scan_source = scan_source
        self.max_entries = max_entries
        self._full_logged: set[str] = set()  # the epochs whose stats were found full (logged once each)
        self.symbols = frozenset(symbols)
        self.timeframes = frozenset(timeframes)
        self.horizons = tuple(horizons)
        self.channel = outcome_channel(signal_channel)
        self.pending_pairs: set[str] = set()  # "<timeframe>:<symbol>" of the pairs with pending signals

    def route(self) -> int:
        """Register the signals published since the last routing as pending on their pair; return how many."""
        current = self.client.get(EPOCH_KEY)
        if current is None:
            return 0
        current = str(current)  # a decoded client (make_redis)
        cursor = str(self.client.get(OUTCOME_CURSOR_KEY) or "").split(" ")
        after = int(cursor[1]) if len(cursor) == 2 and cursor[0] == current and cursor[1].isdigit() else 0
        registered = 0
        for _ in range(ROUTE_MAX_BATCHES):
            entries = history.read_entries(self.client, after, count=ROUTE_BATCH)
            if not entries:
                break
            commands = [self._registration(signal, current) for _seq, signal in entries]
            replies = run_commands(self.client, [c for c in commands if c is not None], SCRIPTS)
            registered += sum(reply in (COUNTED, NOT_COUNTED) for reply in replies)
            if NOT_COUNTED in replies and current not in self._full_logged:
                self._full_logged.add(current)
                log.warning(
                    "stats full: %d entries in epoch %s (STATS_MAX_ENTRIES); signals of new strategies or sources"
                    " are scored but not counted",
                    self.max_entries,
                    current,
                )
            after = entries[-1][0]
            self.client.set(OUTCOME_CURSOR_KEY, f"{current} {after}", ex=OUTCOME_TTL_S)
        self.pending_pairs = {str(pair) for pair in self.client.smembers(OUTCOME_PENDING_PAIRS_KEY)}
        return registered

    def _registration(self, signal: dict[str, Any] | None, epoch: str) -> Command | None:
        """The command registering SIGNAL as pending (or unscored when late), None when the scan cannot score it."""
        if signal is None or signal.get("epoch") != epoch or not isinstance(signal.get("seq"), int):
            return None
        symbol, timeframe, strategy = signal.get("symbol"), signal.get("timeframe"), signal.get("strategy")
        when = signal_bar_ms(signal)
        if symbol not in self.symbols or timeframe not in self.timeframes or not isinstance(strategy, str):
            return None
        if when is None or not strategy:
            return None
        assert isinstance(symbol, str) and isinstance(timeframe, str)  # members of self.symbols / self.timeframes
        seq, bar_ms = signal["seq"], timeframe_ms(timeframe)
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
        return register_command(
            Registration(
                epoch=epoch,
                seq=seq,
                signal_id=str(signal.get("id")),
                symbol=symbol,
                timeframe=timeframe,
                strategy=strategy,
                bar_ms=when,
                stats_key=stats,
                stats_index_key=index_key + epoch,
                other_index_key=other_index + epoch,
                counted_under=counted_under,
                member=json.dumps([epoch, seq, signal.get("id"), signal["type"], strategy, [], stats]),
                uncounted_member=json.dumps([epoch, seq, signal.get("id"), signal["type"], strategy, [], ""]),
                late=late,
                kept_bar=kept_bar,
                late_if_kept=late_reason(first, closed_ms),
                max_entries=self.max_entries,
            )
        )

    def _is_scan_signal(self, signal: dict[str, Any], symbol: str, timeframe: str, strategy: str, when: int) -> bool:
        """True for a signal the scan made: its source, one of its strategies, and the id the scan derives."""
        if signal.get("source") != self.scan_source or strategy not in self.specs:
            return False
        return bool(signal.get("id") == signal_id(symbol, strategy, timeframe, when, signal["type"]))

    def read_pending(self, pair: str) -> Command:
        """The command reading the pending set of PAIR with scores (its reply goes to score())."""
        return ("zrange", OUTCOME_PENDING_PREFIX + pair, 0, -1, False, True)

    def score(self, symbol: str, timeframe: str, candles: Candles, pending: list[tuple[str, float]]) -> list[Command]:
        """The commands recording the outcomes of PENDING signals whose horizon bars are closed, and dropping
        those complete or never scorable (all of them when the pending set expired)."""
        pair = f"{timeframe}:{symbol}"
        if not pending:  # its pending set expired: the pair leaves the set of pairs to look at
            return [done_command(pair, "")]
        times, close = candles.open_time, candles.close
        stored: tuple[np.ndarray, np.ndarray] | None = None
        commands: list[Command] = []
        for member, score in pending:
            when = int(score)
            if when > int(times[-1]):
                continue  # its bar has not closed yet
            if when < int(times[0]):
                if stored is None:
                    found = read_closes(self.client, symbol, timeframe)
                    stored = (np.asarray(found[0]), np.asarray(found[1]))
                found_times, found_close = stored
            else:
                found_times, found_close = times, close
            index = int(np.searchsorted(found_times, when))
            if index >= len(found_times) or int(found_times[index]) != when:
                commands.append(done_command(pair, member))  # not a bar of this pair (or gone from the store)
                continue
            epoch, seq, known_id, kind, strategy, *rest = json.loads(member)
            done = rest[0] if rest else []
            # Members written before outside signals had entries of their own name no stats key: the strategy's.
            stats = rest[1] if len(rest) > 1 else stats_key(epoch, strategy)
            # An array indexes as a sequence of floats does; cast, not tolist(), which would copy the window.
            closes = cast("Sequence[float]", found_close)
            outcomes = outcomes_at(kind, closes, index, [h for h in self.horizons if h not in done])
            if not outcomes:
                continue
            scored = sorted([*done, *outcomes])
            left = (
                json.dumps([epoch, seq, known_id, kind, strategy, scored, stats])
                if len(scored) < len(self.horizons)
                else ""
            )
            scored_now = [HorizonOutcome(h, r, announcement(epoch, seq, h)) for h, r in outcomes.items()]
            commands.append(
                record_command(
                    Record(epoch, seq, symbol, timeframe, stats, self.channel, member, left, when, scored_now)
                )
            )
        return commands
