"""Publisher.publish_signal: validate, number, store and broadcast a signal in one atomic Redis step."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from backend.settings import Settings
from backend.signal_schema import (
    DEDUPE_TTL_S,
    EPOCH_KEY,
    HISTORY_KEY,
    HISTORY_SYMBOL_PREFIX,
    HISTORY_SYMBOL_START_PREFIX,
    NOTIFY_GROUP,
    SCHEMA_VERSION,
    SENT_PREFIX,
    SEQ_KEY,
    InvalidSignal,
    new_epoch,
    utc_iso,
    validate_signal,
)

# One script, so a signal is either live AND in history with its seq, or neither.
# A missing epoch means Redis lost its data: start a new epoch with seq and history reset.
# The dedupe claim (KEYS[4]) is taken in the same step: a retried publish whose reply was
# lost returns the stored signal instead of publishing it twice.
# The per-symbol index (ARGV[8] .. epoch .. ':' .. symbol) holds exactly the seqs of the retained entries of each
# symbol: entries the XADD's trim is about to drop leave their symbol's index first. Its keys are named after the
# epoch, so a new epoch (Redis lost its data) starts them empty with the history; ARGV[9] .. epoch marks the first
# seq indexed (a history older than the index is read the old way until its entries are trimmed).
# A history started here gets the notification dispatcher's consumer group (ARGV[7]) at its very start, so
# after Redis lost its data no signal published before the dispatcher's next run is skipped.
_PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[3], epoch)
  redis.call('DEL', KEYS[1], KEYS[2])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[7], '0', 'MKSTREAM')
end
if #KEYS == 4 then
  local stored = redis.call('GET', KEYS[4])
  if stored then return {0, stored} end
end
local seq = redis.call('INCR', KEYS[1])
local signal = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. string.sub(ARGV[2], 2)
local index = ARGV[8] .. epoch .. ':'
redis.call('SET', ARGV[9] .. epoch, seq, 'NX')
local excess = redis.call('XLEN', KEYS[2]) - tonumber(ARGV[3]) + 1
if excess > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', excess)) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'sym' and fields[i + 1] ~= '' then
        redis.call('ZREM', index .. fields[i + 1], string.match(entry[1], '^%d+'))
      end
    end
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'sym', ARGV[6], 'sig', signal)
if ARGV[6] ~= '' then redis.call('ZADD', index .. ARGV[6], seq, seq) end
redis.call('PUBLISH', ARGV[1], signal)
if #KEYS == 4 then redis.call('SET', KEYS[4], signal, 'EX', ARGV[5]) end
return {1, signal}
"""


class SignalTooLarge(InvalidSignal):
    """A signal whose stored form would exceed MAX_SIGNAL_BYTES."""


class Publisher:
    """Publishes signals on one channel with one history; one per process."""

    def __init__(self, client: redis.Redis, channel: str, history_maxlen: int, max_bytes: int):
        """Bind the Redis client and the limits."""
        self.client = client
        self.channel = channel
        self.history_maxlen = history_maxlen
        self.max_bytes = max_bytes
        self._script = client.register_script(_PUBLISH_LUA)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Publisher:
        """The publisher of SETTINGS' channel and limits, over CLIENT."""
        return cls(client, settings.signal_channel, settings.history_maxlen, settings.max_signal_bytes)

    def publish_signal(self, signal: Mapping[str, object]) -> dict[str, Any]:
        """Store and broadcast SIGNAL; return the stored signal (the earlier one for a duplicate id)."""
        return self.publish(signal)[0]

    def publish_if_new(self, signal: Mapping[str, object]) -> dict[str, Any] | None:
        """Store and broadcast SIGNAL unless its id was published before; the stored signal, None for a duplicate."""
        stored, created = self.publish(signal)
        return stored if created else None

    def publish(self, signal: Mapping[str, object]) -> tuple[dict[str, Any], bool]:
        """Store and broadcast SIGNAL unless its id was published before; (stored signal, True if it is new)."""
        validate_signal(signal)
        body = {k: v for k, v in signal.items() if k not in ("seq", "epoch")}
        body.setdefault("v", SCHEMA_VERSION)
        body["emitted_at"] = utc_iso(millis=True)
        encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        # Leave room for the seq and epoch the script prepends.
        if len(encoded.encode()) + 80 > self.max_bytes:
            raise SignalTooLarge(f"signal of {len(encoded)} bytes exceeds MAX_SIGNAL_BYTES={self.max_bytes}")
        keys = [SEQ_KEY, HISTORY_KEY, EPOCH_KEY]
        if body.get("id"):
            keys.append(SENT_PREFIX + str(body["id"]))
        args: list[str | int] = [
            self.channel,
            encoded,
            self.history_maxlen,
            new_epoch(),
            DEDUPE_TTL_S,
            str(body.get("symbol") or ""),  # a str when present: validate_signal checked
            NOTIFY_GROUP,
            HISTORY_SYMBOL_PREFIX,
            HISTORY_SYMBOL_START_PREFIX,
        ]
        created, stored = self._script(keys=keys, args=args)
        return json.loads(stored), bool(created)
