"""One deadline per notification attempt, from connect to last byte, whatever library does the HTTP.

A socket timeout bounds each connect and each read, not their sum: a destination that answers one byte every few
seconds, in its headers or its body, would hold a worker process as long as it liked. Here every socket the
attempt connects (requests for webhooks, Apprise's plugins for the rest, also from the threads Apprise hands them
to: the attempt is a context variable, which Apprise copies into them) is recorded through Python's audit hook
`socket.connect`, and shut down when the deadline passes or the attempt ends: a blocked read returns at once, the
library raises its connection error, and nothing of the attempt outlives NOTIFY_TIMEOUT_S (docs/architecture.md,
"Notifications").
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from backend import compat

log = logging.getLogger(__name__)
_current: ContextVar[Deadline | None] = ContextVar("notify_attempt_deadline", default=None)
_install_lock = threading.Lock()
_installed = False


class Deadline:
    """The sockets one attempt connected, and whether its deadline has passed."""

    def __init__(self, answer_bytes: int | None = None) -> None:
        """No socket yet, not expired; ANSWER_BYTES: the most of a body requests reads whole (None: no cap)."""
        self.answer_bytes = answer_bytes
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.expired = threading.Event()  # the deadline passed (not merely the attempt ended)
        self.over = False  # the deadline passed or the attempt ended: a later connect is cut at once

    def add(self, sock: socket.socket) -> None:
        """Keep a duplicate of SOCK (its own descriptor: shutting it down reaches SOCK's connection even after an
        SSL wrap detached SOCK, and never another socket that reused a closed descriptor number)."""
        dup = socket.socket(fileno=os.dup(sock.fileno()))
        with self.lock:
            self.sockets.append(dup)
            over = self.over
        if over:  # a connect after the end (a library's own retry, in a thread it left running) ends at once
            _shutdown(dup)

    def expire(self) -> None:
        """The deadline passed: end the attempt."""
        self.expired.set()
        self.end()

    def end(self) -> None:
        """Shut down every socket of the attempt: reads blocked on them return."""
        with self.lock:
            self.over = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        """Close the duplicates (the library closes its own sockets)."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected yet or already gone: the connect timeout bounds a connect in progress
        pass


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    deadline = _current.get()
    if deadline is None:
        return
    try:
        deadline.add(args[0])
    except Exception:  # an error raised here would abort the connect itself
        log.warning("a notification attempt's socket is not under its deadline", exc_info=True)


def current_answer_bytes() -> int | None:
    """The cap on answer bodies of the attempt running in this context (None: none, or no attempt)."""
    deadline = _current.get()
    return deadline.answer_bytes if deadline is not None else None


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:  # audit hooks cannot be removed: one per process, idle outside attempts
            sys.addaudithook(_on_audit)
            compat.requests_bodies_capped(current_answer_bytes)
            _installed = True


@contextmanager
def attempt_deadline(seconds: float, answer_bytes: int | None = None) -> Iterator[Deadline]:
    """Sockets connected within the block (or by threads given its context) are shut down SECONDS after it began,
    or when it ends if sooner (a library that stopped waiting may have left a thread reading); requests reads at
    most ANSWER_BYTES of an answer's body there (backend/compat.py, requests_bodies_capped)."""
    _install()
    deadline = Deadline(answer_bytes)
    token = _current.set(deadline)
    timer = threading.Timer(seconds, deadline.expire)
    timer.daemon = True
    timer.start()
    try:
        yield deadline
    finally:
        timer.cancel()
        _current.reset(token)
        deadline.end()
        deadline.close()
