"""The scan's one hook per (symbol, timeframe, candles) (docs/architecture.md, "Charts and outcomes"): hands the
bars to the chart store (tasks/charts_store.py) and the pair to the outcome scorer (tasks/outcome_scorer.py), and
writes both in batches, one round trip each, from a thread of its own."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import redis

from backend.settings import Settings
from tasks import charts_store, outcome_scripts
from tasks.charts_store import ChartStore, PairBars
from tasks.market import Candles
from tasks.outcome_scorer import OutcomeScorer
from tasks.redis_scripts import Command, run_commands
from tasks.strategies import Strategy

log = logging.getLogger(__name__)

ROUTE_EVERY_S = 1.0  # besides at each new bar, so the signals of a market that stopped are counted too
SCRIPTS = (*charts_store.SCRIPTS, *outcome_scripts.SCRIPTS)
BATCH_PAIRS = 100  # pairs per round trip
IDLE_FLUSH_S = 0.02  # the scan handed over no pair for this long: write what is queued


@dataclass(frozen=True)
class PairWork:
    """One pair's bars handed over by the scan, with its new bars to append (None: nothing new)."""

    symbol: str
    timeframe: str
    candles: Candles
    bars: PairBars | None

    @property
    def pair(self) -> str:
        """ "timeframe:symbol", as the outcome keys name a pair."""
        return f"{self.timeframe}:{self.symbol}"


class ChartKeeper:
    """Called by the scan once per (symbol, timeframe, candles): keeps the bars (ChartStore) and scores pending
    signals (OutcomeScorer), both written in the same batches; a failure is logged, never raised."""

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
        """Bind the Redis client and what the scan covers; the layout of the stored series is fixed here."""
        self.client = client
        self.charts = ChartStore(strategies)
        self.outcomes = OutcomeScorer(
            client,
            strategies,
            symbols,
            timeframes,
            horizons,
            signal_channel,
            scan_source=scan_source,
            max_entries=max_entries,
        )
        self._routed: dict[str, int] = {}  # per timeframe, the newest bar at which history was routed
        self._routed_at = float("-inf")
        self._queue: list[PairWork] = []
        self._queued_at = 0.0
        self._pending_work = threading.Condition()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    @property
    def max_bars(self) -> int:
        """The bars kept per pair (the chart store's)."""
        return self.charts.max_bars

    @max_bars.setter
    def max_bars(self, value: int) -> None:
        """Keep VALUE bars per pair from the next append on."""
        self.charts.max_bars = value

    @property
    def max_entries(self) -> int:
        """The stats entries counted per epoch (the outcome scorer's)."""
        return self.outcomes.max_entries

    @max_entries.setter
    def max_entries(self, value: int) -> None:
        """Count VALUE stats entries per epoch from the next routing on."""
        self.outcomes.max_entries = value

    def route(self) -> int:
        """Register the signals published since the last routing as pending on their pair; return how many."""
        return self.outcomes.route()

    def keep(
        self, symbol: str, timeframe: str, candles: Candles, series: dict[Strategy, dict[str, np.ndarray]] | None = None
    ) -> None:
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

    def _prepare(
        self, symbol: str, timeframe: str, candles: Candles, series: dict[Strategy, dict[str, np.ndarray]]
    ) -> PairWork:
        """Route history when the timeframe has a new bar (or a second passed), then take the pair's new bars."""
        newest = int(candles.open_time[-1])
        if newest > self._routed.get(timeframe, -1) or time.monotonic() - self._routed_at > ROUTE_EVERY_S:
            self.outcomes.route()
            self._routed[timeframe] = newest
            self._routed_at = time.monotonic()
        return PairWork(symbol, timeframe, candles, self.charts.new_bars(symbol, timeframe, candles, series))

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
                    self.charts.forget(work.symbol, work.timeframe)
                if isinstance(exc, redis.RedisError):
                    log.warning("charts of %d pairs not kept: %s", len(batch), exc)
                else:
                    log.exception("charts of %d pairs not kept", len(batch))

    def _flush_when_idle(self) -> None:
        """The flusher thread: write the queue once the scan stops handing over pairs for IDLE_FLUSH_S."""
        while True:
            with self._pending_work:
                while not self._queue or time.monotonic() - self._queued_at < IDLE_FLUSH_S:
                    self._pending_work.wait(IDLE_FLUSH_S if self._queue else None)
            self.flush()

    def _write(self, batch: list[PairWork]) -> None:
        """Append the bars of BATCH and read their pending signals in one round trip, then score those."""
        commands: list[Command] = []
        with_pending = self.outcomes.pending_pairs  # route() replaces it, maybe meanwhile (in the scan's thread)
        for work in batch:
            if work.bars is not None:
                commands.append(work.bars.command)
            if work.pair in with_pending:
                commands.append(self.outcomes.read_pending(work.pair))
        replies = iter(run_commands(self.client, commands, SCRIPTS))
        refills: list[Command] = []
        scoring: list[Command] = []
        for work in batch:
            if work.bars is not None and next(replies) == 0:  # the store does not reach our anchor
                refills.append(self.charts.whole_window(work.bars))
            if work.pair in with_pending:
                scoring += self.outcomes.score(work.symbol, work.timeframe, work.candles, next(replies))
        if refills or scoring:
            run_commands(self.client, refills + scoring, SCRIPTS)
