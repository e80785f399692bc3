"""The outcome scorer (docs/architecture.md, "Charts and outcomes"): routes the signals in history to the pending
set of their pair, scores them from the pair's closes as each horizon's bar closes, counts them in the stats and
announces each outcome on `<channel>:outcomes`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import redis

from backend import history
from backend.charts import read_closes
from backend.outcomes import announcement, late_reason, outcomes_at, signal_bar_ms, signal_ms
from backend.settings import Settings
from backend.signal_schema import (
    EPOCH_KEY,
    OUTCOME_CURSOR_KEY,
    OUTCOME_PENDING_PAIRS_KEY,
    OUTCOME_PENDING_PREFIX,
    OUTCOME_TTL_S,
    STATS_INDEX_PREFIX,
    STATS_OUTSIDE_INDEX_PREFIX,
    outcome_channel,
    outside_stats_key,
    signal_id,
    stats_key,
)
from tasks.market import Candles
from tasks.market.candles import timeframe_ms
from tasks.outcome_scripts import (
    COUNTED,
    NOT_COUNTED,
    SCRIPTS,
    HorizonOutcome,
    Record,
    Registration,
    done_command,
    record_command,
    register_command,
)
from tasks.redis_scripts import Command, run_commands
from tasks.strategies import Strategy

log = logging.getLogger(__name__)

ROUTE_BATCH = 1000
ROUTE_MAX_BATCHES = 20  # per call: a long backlog is routed over several scans


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
