"""Webhook destinations for the notification rows: real HTTP receivers on 127.0.0.1 that check every
`Quantum-Signature`, record every `Idempotency-Key`, can go down and come back on the same port, and a ledger
that counts deliveries per destination (lost, repeated under the same key, or under another one)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from backend import destinations
from backend.signal_schema import HISTORY_KEY
from harness.polling import wait_until
from harness.receiver import Received, Receiver
from tests.chaos.harness import Row
from tests.chaos.stack import ChaosStack

SECRET = "chaos-webhook-secret-0123456789"


class Webhooks:
    """Destinations, each a receiver of its own (its own port, so one can go down alone); every request's
    signature is checked as it arrives and every request is kept, across restarts."""

    def __init__(self):
        """No destination yet: url(path) starts one."""
        self.lock = threading.Lock()
        self.log: list[Received] = []  # every request, across restarts
        self.bad_signatures: list[Received] = []
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = {}  # per path: each new key's first answers
        self._seen: Counter = Counter()  # (path, key) → requests so far
        self.receivers: dict[str, Receiver] = {}
        self.ports: dict[str, int] = {}

    def _start(self, path: str, port: int = 0) -> Receiver:
        receiver = Receiver(port, on_request=self._record, answer=self._answer)
        self.receivers[path], self.ports[path] = receiver, receiver.port
        return receiver

    def url(self, path: str) -> str:
        """The destination URL of PATH (its receiver started on first use)."""
        receiver = self.receivers.get(path) or self._start(path)
        return receiver.url(path)

    def urls(self, *paths: str) -> str:
        """NOTIFY_URLS for PATHS."""
        return " ".join(self.url(p) for p in paths)

    def each_key(self, path: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        """Answer the first requests of every Idempotency-Key at PATH with ANSWERS in turn, then 200."""
        self.answers[path] = list(answers)

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        # Connection: close on every answer, so that down() refuses the next attempt (no kept-alive connection).
        planned = self.answers.get(path, [])
        key = (path, headers.get("Idempotency-Key"))
        with self.lock:
            n = self._seen[key]
            self._seen[key] += 1
        status, extra = planned[n] if n < len(planned) else (200, {})
        return status, {**extra, "Connection": "close"}

    def _record(self, received: Received) -> None:
        ok = destinations.verify_signature(SECRET, received.body, received.headers.get("Quantum-Signature", ""))
        with self.lock:
            self.log.append(received)
            if not ok:
                self.bad_signatures.append(received)

    def hang(self, path: str) -> None:
        """Leave PATH's requests unanswered."""
        self.url(path)
        self.receivers[path].hang(path)

    def release(self, path: str) -> None:
        """Answer PATH again."""
        self.receivers[path].release(path)

    def down(self, path: str) -> None:
        """Stop PATH's receiver: connections to it are refused."""
        self.receivers[path].close()

    def up(self, path: str) -> None:
        """Start PATH's receiver again on the same port."""
        self._start(path, self.ports[path])

    def received(self, path: str) -> list[Received]:
        """Every request to PATH so far."""
        with self.lock:
            return [r for r in self.log if r.path == path]

    def delivered_keys(self, path: str) -> set[str]:
        """Keys PATH accepted (2xx) so far."""
        return {r.headers.get("Idempotency-Key") for r in self.received(path) if r.status and r.status < 300}

    def close(self) -> None:
        """Stop every receiver (releases hanging requests)."""
        for receiver in self.receivers.values():
            receiver.close()


@dataclass
class Expected:
    """The signals a scenario produced: Idempotency-Key → (signal id, publish time as time.time())."""

    signals: dict[str, tuple[str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stored: dict, at: float) -> None:
        """A signal the publisher (or POST /api/signals) stored."""
        with self.lock:
            self.signals[f"{stored['epoch']}:{stored['seq']}"] = (stored["id"], at)

    def snapshot(self) -> dict[str, tuple[str, float]]:
        """The signals so far."""
        with self.lock:
            return dict(self.signals)


@dataclass
class DestinationTally:
    """One destination's deliveries of the expected signals."""

    path: str
    expected: int
    delivered: int  # distinct keys accepted
    lost: list[str]
    repeats: int  # accepted again under the same key (allowed: at least once)
    stray: list[str]  # accepted keys never produced
    mismatched: list[str]  # a body whose epoch:seq or id is not its key's
    timed: list[tuple[float, float]]  # (publish time, seconds from publish to first acceptance)

    @property
    def lags(self) -> list[float]:
        """Seconds from publish to first acceptance, per signal."""
        return [lag for _at, lag in self.timed]


def tally_destination(hooks: Webhooks, path: str, expected: Expected) -> DestinationTally:
    """Compare what PATH accepted with what was produced."""
    accepted = [r for r in hooks.received(path) if r.status and r.status < 300]
    counts = Counter(r.headers.get("Idempotency-Key") for r in accepted)
    first: dict[str, float] = {}
    mismatched = []
    wanted = expected.snapshot()
    for r in accepted:
        key = r.headers.get("Idempotency-Key")
        first.setdefault(key, r.at)
        body = json.loads(r.body)
        if f"{body.get('epoch')}:{body.get('seq')}" != key or (key in wanted and body.get("id") != wanted[key][0]):
            mismatched.append(key)
    return DestinationTally(
        path,
        len(wanted),
        len(set(counts) & set(wanted)),
        sorted(set(wanted) - set(counts)),
        sum(n - 1 for n in counts.values()),
        sorted(set(counts) - set(wanted)),
        mismatched,
        [(at, first[k] - at) for k, (_id, at) in wanted.items() if k in first],
    )


def lag_text(lags: list[float]) -> str:
    """`p50 12 ms, p99 80 ms` of LAGS in seconds."""
    if not lags:
        return "n/a"
    return f"p50 {np.percentile(lags, 50) * 1000:.0f} ms, p99 {np.percentile(lags, 99) * 1000:.0f} ms"


def notify_stack(stack_factory, hooks: Webhooks, paths: tuple[str, ...], webs: int = 0, workers: int = 1, **env):
    """A stack whose workers notify PATHS of HOOKS (the market stays flat: every signal is published here)."""
    extra = {"NOTIFY_URLS": hooks.urls(*paths), "NOTIFY_WEBHOOK_SECRET": SECRET, "NOTIFY_TIMEOUT_S": "3", **env}
    stack: ChaosStack = stack_factory(webs=webs, workers=workers, beats=1, extra_env=extra)
    return stack


def wait_dispatching(stack: ChaosStack) -> None:
    """Poll until the dispatcher has run (its first run makes the history stream and the group; nothing else does
    before a signal is published): from then on a signal waits at most a tick (1 s) to be dispatched."""
    wait_until(lambda: stack.client().exists(HISTORY_KEY), 60, 0.05, "the dispatcher's first run")


def wait_all_delivered(hooks: Webhooks, paths, expected: Expected, timeout: float) -> None:
    """Poll until every path accepted every expected key (or fail naming what is missing)."""

    def done():
        return all(set(expected.snapshot()) <= hooks.delivered_keys(p) for p in paths)

    try:
        wait_until(done, timeout, 0.1, "every signal at every destination")
    except AssertionError:
        missing = {p: sorted(set(expected.snapshot()) - hooks.delivered_keys(p))[:5] for p in paths}
        raise AssertionError(f"not delivered within {timeout:g} s, e.g. {missing}") from None


def record_row(
    rows: list[Row],
    name: str,
    hooks: Webhooks,
    paths,
    expected: Expected,
    recovery_s: float | None = None,
    notes: list[str] | None = None,
    repeats_allowed: bool = True,
) -> dict[str, DestinationTally]:
    """Add the scenario's row (summed over PATHS, per-destination lost in the notes) and check it."""
    tallies = {p: tally_destination(hooks, p, expected) for p in paths}
    notes = list(notes or [])
    notes.append("lost per destination " + ", ".join(f"{p} {len(t.lost)}" for p, t in tallies.items()))
    if hooks.bad_signatures:
        notes.append(f"{len(hooks.bad_signatures)} bad signatures")
    rows.append(
        Row(
            name,
            len(expected.snapshot()),
            sum(t.expected for t in tallies.values()),
            sum(t.delivered for t in tallies.values()),
            sum(len(t.lost) for t in tallies.values()),
            sum(t.repeats for t in tallies.values()),
            recovery_s,
            "; ".join(notes),
        )
    )
    assert expected.snapshot(), f"{name}: nothing produced"
    for path, t in tallies.items():
        assert not t.lost, f"{name}: {path} never got {t.lost[:5]}"
        assert not t.stray and not t.mismatched, f"{name}: {path} got other keys or bodies: {t}"
        assert repeats_allowed or not t.repeats, f"{name}: {path} got {t.repeats} repeats"
    assert not hooks.bad_signatures, f"{name}: unsigned or badly signed requests: {hooks.bad_signatures[:2]}"
    return tallies


class Stream:
    """Publishes RATE signals a second through the project's publisher in a thread, each one added to EXPECTED;
    a publish Redis refuses (an outage) is counted and not expected."""

    def __init__(self, stack: ChaosStack, expected: Expected, rate: float, prefix: str, limit: int | None = None):
        """Start publishing (at most LIMIT signals)."""
        from harness.redis import make_publisher

        self.publisher = make_publisher(stack.client(socket_connect_timeout=1, socket_timeout=2))
        self.expected, self.rate, self.prefix, self.limit = expected, rate, prefix, limit
        self.sent = self.errors = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time

        start, n = time.monotonic(), 0
        while not self._stopping.is_set() and (self.limit is None or self.sent < self.limit):
            signal = {"id": f"{self.prefix}-{n}", "type": "BUY" if n % 2 else "SELL", "price": 100.0 + n % 500}
            signal.update(symbol="BTCUSDT", reason="chaos stream")
            at = time.time()
            try:
                self.expected.add(self.publisher.publish_signal(signal), at)
                self.sent += 1
            except Exception:  # noqa: BLE001 - Redis down: this one was never stored, the next id is tried
                self.errors += 1
            n += 1
            self._stopping.wait(max(0.0, start + n / self.rate - time.monotonic()))

    def done(self) -> bool:
        """True once LIMIT signals were published."""
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop publishing."""
        self._stopping.set()
        self._thread.join(10)
