"""Tests that must run alone under pytest-xdist: a readers-writer lock (flock) shared by the worker processes."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def hold(directory: Path, alone: bool) -> Iterator[None]:
    """Run the body alone (ALONE: once every running test is done, none starting meanwhile) or beside the others.

    Every test passes the gate, held by an ALONE test from before it waits until it is done, so a steady flow
    of other tests can never keep an ALONE one waiting.
    """
    with open(directory / "alone.gate", "a") as gate, open(directory / "alone.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # closing the files releases what is still held
