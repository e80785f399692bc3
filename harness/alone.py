"""Tests that must run alone under pytest-xdist: a readers-writer lock (flock) shared by the worker processes.

Every test holds the lock shared from its setup to its teardown; a test that asserts latencies takes it exclusively
for its call only, so no other test runs meanwhile, and its own setup and teardown still overlap the others'.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Turns:
    """One test's hold on the lock in DIRECTORY (the folder every worker of one run shares)."""

    def __init__(self, directory: Path):
        """Open the lock's two files; nothing is held yet."""
        self.gate = open(directory / "alone.gate", "a")  # noqa: SIM115 - closed in close()
        self.lock = open(directory / "alone.lock", "a")  # noqa: SIM115 - closed in close()

    def share(self) -> Turns:
        """Hold the lock shared: wait while a test runs alone, or waits to."""
        fcntl.flock(self.gate, fcntl.LOCK_EX)  # an exclusive waiter holds the gate: none passes it meanwhile
        try:
            fcntl.flock(self.lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        return self

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Hold the lock exclusively in the body: once every other test has let go, none starting meanwhile."""
        # Let go of the shared hold first: two tests waiting to run alone, each still holding it shared, would
        # wait for each other forever.
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.lock, fcntl.LOCK_SH)  # a downgrade never waits: back to shared for the teardown
        finally:
            fcntl.flock(self.gate, fcntl.LOCK_UN)

    def close(self) -> None:
        """Let go of everything (closing the files releases their locks)."""
        self.gate.close()
        self.lock.close()
