"""The client's bookkeeping of the contract, event by event: what is yielded, what moves the cursor."""

from __future__ import annotations

from quantum_signals_client import Cursor, Outcome, Resync, Signal
from quantum_signals_client.stream_state import Position, StreamState


def signal(seq: int | None, epoch: str | None = "e1") -> dict:
    """A new_signal payload."""
    numbered = {"seq": seq, "epoch": epoch} if seq is not None else {}
    return {**numbered, "type": "BUY", "price": 1.0}


def yielded_seqs(items: list) -> list:
    """Each item as (epoch, seq) for a signal, ("resync", epoch) for a resync."""
    return [(i.epoch, i.seq) if isinstance(i, Signal) else ("resync", i.epoch) for i in items]


def test_a_client_without_cursor_starts_at_the_welcome_and_saves_it():
    state = StreamState()

    assert state.connect_auth() == {}
    assert state.welcome({"epoch": "e1", "seq": 41}) == [Position(Cursor("e1", 41))]
    assert state.connect_auth() == {"since": 41, "epoch": "e1"}


def test_a_since_without_epoch_learns_it_from_the_welcome_and_saves_nothing():
    state = StreamState(None, 5)

    assert state.connect_auth() == {"since": 5}
    assert state.welcome({"epoch": "e1", "seq": 9}) == []
    assert state.connect_auth() == {"since": 5, "epoch": "e1"}


def test_a_replay_overlap_is_yielded_once_in_seq_order():
    state = StreamState("e1", 3)
    items = []

    for seq in (2, 3, 4, 5, 4, 5, 6):
        items += state.signal(signal(seq))

    assert yielded_seqs(items) == [("e1", 4), ("e1", 5), ("e1", 6)]
    assert state.connect_auth() == {"since": 6, "epoch": "e1"}


def test_resync_restarts_the_cursor_once_even_when_told_twice():
    state = StreamState("e1", 9)

    first = state.resync({"epoch": "e2"})
    again = state.resync({"epoch": "e2"})
    after = state.signal(signal(1, "e2"))

    assert first == [Resync("e2", previous=Cursor("e1", 9))] and again == []
    assert yielded_seqs(after) == [("e2", 1)]


def test_a_signal_of_another_epoch_without_resync_says_resync_first():
    state = StreamState("e1", 9)

    items = state.signal(signal(1, "e2"))

    assert items[0] == Resync("e2", previous=Cursor("e1", 9))
    assert yielded_seqs(items) == [("resync", "e2"), ("e2", 1)]


def test_live_only_signals_are_yielded_and_move_nothing():
    state = StreamState("e1", 3)

    items = state.signal(signal(None)) + state.signal({"type": "SELL", "price": 2, "seq": 7})  # seq without epoch

    assert [(i.seq, i.epoch, i.type) for i in items] == [(None, None, "BUY"), (None, None, "SELL")]
    assert state.connect_auth() == {"since": 3, "epoch": "e1"}


def test_malformed_events_are_dropped():
    state = StreamState("e1", 3)

    dropped = (
        state.signal({"price": 1})
        + state.welcome({"epoch": 1})
        + state.resync({})
        + state.outcome({"epoch": "e1"})
        + state.signal("junk")
    )

    assert dropped == [] and state.connect_auth() == {"since": 3, "epoch": "e1"}
    assert state.outcome({"epoch": "e1", "seq": 2, "id": "x", "h": 1, "r": -0.5}) == [Outcome("e1", 2, "x", 1, -0.5)]
