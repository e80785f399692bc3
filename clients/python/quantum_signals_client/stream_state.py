"""The received cursor and what each server event yields: the bookkeeping of the contract, free of I/O."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from quantum_signals_client.events import Cursor, Outcome, ProtocolError, Resync, Signal

log = logging.getLogger("quantum_signals_client")


@dataclass(frozen=True)
class Position:
    """A cursor to save without yielding anything: where a client with no cursor joined the live stream."""

    cursor: Cursor


Item = Signal | Resync | Outcome | Position


class StreamState:
    """The (epoch, seq) received so far, which a reconnect resumes from; each event handler returns what to yield.

    SEQ None: no cursor yet (the live stream starts at the welcome). EPOCH None with a SEQ: a `since` whose
    epoch the welcome tells.
    """

    def __init__(self, epoch: str | None = None, seq: int | None = None):
        """Start from (EPOCH, SEQ)."""
        self.epoch, self.seq = epoch, seq

    def connect_auth(self) -> dict:
        """The cursor part of the connect auth: `since` and `epoch` when known."""
        auth: dict = {}
        if self.seq is not None:
            auth["since"] = self.seq
        if self.epoch is not None:
            auth["epoch"] = self.epoch
        return auth

    def welcome(self, data: object) -> list[Item]:
        """`welcome {"epoch", "seq"}`: a client with no cursor starts here (and saves it)."""
        if not (isinstance(data, dict) and isinstance(data.get("epoch"), str) and _is_int(data.get("seq"))):
            log.warning("ignored a welcome not of the contract's shape: %.200r", data)
            return []
        if self.seq is None:
            self.epoch, self.seq = data["epoch"], data["seq"]
            return [Position(Cursor(self.epoch, self.seq))]
        if self.epoch is None:
            self.epoch = data["epoch"]
        return []

    def resync(self, data: object) -> list[Item]:
        """`resync {"epoch"}`: the history restarted; signals start again at seq 1 of that epoch."""
        epoch = data.get("epoch") if isinstance(data, dict) else None
        if not isinstance(epoch, str) or not epoch:
            log.warning("ignored a resync not of the contract's shape: %.200r", data)
            return []
        if epoch == self.epoch and self.seq == 0:
            return []  # told twice (the replay and the relay may both say it)
        previous = Cursor(self.epoch, self.seq) if self.epoch is not None and self.seq is not None else None
        self.epoch, self.seq = epoch, 0
        return [Resync(epoch, previous)]

    def signal(self, data: object) -> list[Item]:
        """`new_signal`: yielded unless received already; a live-only one moves no cursor."""
        try:
            signal = Signal.from_payload(data)
        except ProtocolError as exc:
            log.warning("ignored a signal: %s", exc)
            return []
        if signal.seq is None:
            return [signal]
        items: list[Item] = []
        if self.epoch is not None and signal.epoch != self.epoch:
            items = self.resync({"epoch": signal.epoch})  # the history restarted and no resync said so
        if self.seq is not None and signal.epoch == self.epoch and signal.seq <= self.seq:
            return items  # received already (a replay overlapping what came live)
        self.epoch, self.seq = signal.epoch, signal.seq
        return [*items, signal]

    @staticmethod
    def outcome(data: object) -> list[Item]:
        """`signal_outcome`: live only, it moves no cursor."""
        try:
            return [Outcome.from_payload(data)]
        except ProtocolError as exc:
            log.warning("ignored an outcome: %s", exc)
            return []


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
