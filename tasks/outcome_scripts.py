"""The outcome scorer's Lua steps (docs/architecture.md, "Charts and outcomes"), each with its named arguments
and the one function that turns them into KEYS and ARGV, in the order the script names them at its top."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.outcomes import encode_number
from backend.signal_schema import (
    OUTCOME_PENDING_PAIRS_KEY,
    OUTCOME_PENDING_PREFIX,
    OUTCOME_TTL_S,
    STATS_NOT_COUNTED_PREFIX,
    STATS_TTL_S,
    chart_meta_key,
    outcome_key,
)
from tasks.redis_scripts import Command, LuaScript

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
