"""A scenario run: switch production on, inject a fault, measure recovery, tally every delivery, add a table row."""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness.polling import wait_until
from tests.chaos.ledger import Auditor, Tally, republished_ids, tally
from tests.chaos.stack import ChaosStack


@dataclass
class Row:
    """One line of the summary table."""

    scenario: str
    produced: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    recovery_s: float | None
    notes: str = ""


@dataclass(frozen=True)
class Profile:
    """How hard a scenario pushes: the short one runs in `make test`, the full one in `make chaos`."""

    name: str
    outage_s: float
    clients: int
    stream_s: float
    full: bool


SHORT = Profile("short", outage_s=2.0, clients=6, stream_s=2.0, full=False)
FULL = Profile("full", outage_s=10.0, clients=12, stream_s=6.0, full=True)


class Scenario:
    """Counts one scenario's signals from production to every client of POOL."""

    def __init__(self, name: str, stack: ChaosStack, pool, rows: list[Row], auditor: Auditor):
        """The auditor subscribes before production starts, so it sees every signal."""
        self.name, self.stack, self.pool, self.rows = name, stack, pool, rows
        self.auditor = auditor
        wait_until(self.auditor.subscribed.is_set, 20, 0.05, "auditor subscribed")
        self.mark = self.auditor.mark()
        self.repaired_at: float | None = None
        self.recovery_s: float | None = None
        self.notes: list[str] = []

    def produce(self, on: bool = True) -> None:
        """Switch the exchange series so every scan fires (ON) or nothing does."""
        self.stack.exchange.produce(self.stack.symbols, on)

    def produced(self) -> int:
        """Signals produced since the scenario began."""
        return self.auditor.count_since(self.mark)

    def wait_produced(self, count: int, timeout: float = 30) -> None:
        """Wait until COUNT more signals than now were produced."""
        target = self.produced() + count
        wait_until(lambda: self.produced() >= target, timeout, 0.05, f"{count} more signals produced")

    def tally(self) -> Tally:
        """Deliveries so far of everything produced in this scenario."""
        return tally(self.auditor.since(self.mark), list(self.auditor.epochs), self.pool.records())

    def wait_delivered(self, timeout: float = 20) -> Tally:
        """Wait until every client has everything produced so far (or the deadline); return the tally."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.tally()
            if result.lost == 0 or time.monotonic() > deadline:
                return result
            time.sleep(0.1 if self.pool.kind == "python" else 0.5)

    def repaired(self) -> None:
        """The fault has ended (or the crash happened): recovery is timed from now."""
        self.repaired_at = time.monotonic()

    def measure_recovery(self, timeout: float = 60) -> float:
        """Seconds from repaired() until every client holds every signal up to the first one produced after it."""
        assert self.repaired_at is not None
        start = self.repaired_at

        def first_after():
            items = self.auditor.since(self.mark)
            for n, (_key, produced) in enumerate(items.items()):
                if produced.seen_at >= start:
                    return dict(list(items.items())[: n + 1])
            return None

        window = wait_until(first_after, timeout, 0.05, "a signal produced after the repair")
        deadline = time.monotonic() + timeout
        while True:
            result = tally(window, list(self.auditor.epochs), self.pool.records())
            if result.lost == 0:
                self.recovery_s = time.monotonic() - start
                return self.recovery_s
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: not recovered within {timeout}s: {result.details[:5]}")
            time.sleep(0.05 if self.pool.kind == "python" else 0.3)

    def finish(self, require_signals: int = 1) -> Tally:
        """Stop production, let it drain, wait for delivery, record the row, and check lost = duplicated = 0."""
        self.produce(False)
        self.auditor.wait_quiet()
        self.auditor.catch_up()  # anything the live subscription missed that history retained
        result = self.wait_delivered()
        produced = self.auditor.since(self.mark)
        republished = republished_ids(produced)
        mismatched = self.pool.mismatched(produced) if hasattr(self.pool, "mismatched") else []
        if mismatched:
            self.notes.append(f"{len(mismatched)} deliveries with another signal's content")
        if self.auditor.forged:
            self.notes.append(f"{self.auditor.forged} forged messages seen on the channel")
        if republished:
            self.notes.append(f"{republished} ids published twice")
        if result.stray:
            self.notes.append(f"{result.stray} deliveries of signals never produced")
        self.rows.append(
            Row(
                self.name,
                result.produced,
                result.expected,
                result.delivered,
                result.lost,
                result.duplicated,
                self.recovery_s,
                "; ".join(self.notes),
            )
        )
        assert result.produced >= require_signals, f"{self.name}: only {result.produced} signals produced"
        assert result.lost == 0 and result.duplicated == 0, f"{self.name}: {result}"
        assert result.stray == 0, f"{self.name}: clients got signals the auditor never saw: {result}"
        assert not republished, f"{self.name}: {republished} signal ids were published under two seqs"
        assert not mismatched, f"{self.name}: clients got other content under a produced seq: {mismatched[:5]}"
        return result
