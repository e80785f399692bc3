"""The ledger: every signal produced (as Redis saw it) against every signal each client received, by (epoch, seq)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis

from backend import history
from backend.redis_client import make_redis
from backend.signal_schema import EPOCH_KEY, HISTORY_KEY

Key = tuple[str, int]  # (epoch, seq): where a signal sits in the history
Ranges = list[tuple[int, int]]  # sorted, disjoint, inclusive seq ranges


def to_ranges(seqs) -> Ranges:
    """Sorted inclusive ranges covering the integers SEQS."""
    out: Ranges = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def size(ranges: Ranges) -> int:
    """How many integers RANGES cover."""
    return sum(b - a + 1 for a, b in ranges)


def overlap(a: Ranges, b: Ranges) -> int:
    """How many integers both A and B cover."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            total += hi - lo + 1
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def clip(ranges: Ranges, above: int) -> Ranges:
    """The part of RANGES greater than ABOVE."""
    return [(max(a, above + 1), b) for a, b in ranges if b > above]


@dataclass
class ClientRecord:
    """What one client received: its first cursor, the keys it got (as ranges) and how many came twice or more."""

    start: Key | None
    ranges: dict[str, Ranges]
    dups: int = 0
    connects: int = 0
    resyncs: int = 0

    @classmethod
    def from_keys(cls, start: Key | None, keys: list[Key], connects: int = 0, resyncs: int = 0) -> ClientRecord:
        """Build from the raw list of received keys."""
        counts = Counter(keys)
        by_epoch: dict[str, list[int]] = {}
        for epoch, seq in counts:
            by_epoch.setdefault(epoch, []).append(seq)
        return cls(
            start,
            {e: to_ranges(s) for e, s in by_epoch.items()},
            sum(n - 1 for n in counts.values()),
            connects,
            resyncs,
        )


@dataclass
class Produced:
    """One published signal as the auditor saw it."""

    id: str
    seen_at: float  # time.monotonic()
    type: str = ""
    price: float = 0.0
    emitted_at: str = ""


class Auditor:
    """Subscribes to the channel like a relay (catching up from history after every reconnect) and records
    every signal the project published; outside publishers' messages (no seq/epoch/id) are not counted, and
    a numbered message that history does not hold byte for byte is counted as forged, not as produced."""

    def __init__(self, redis_url: str, channel: str = "quantum_signals"):
        """Start auditing in a background thread."""
        self.redis_url, self.channel = redis_url, channel
        self.lock = threading.Lock()
        self.produced: dict[Key, Produced] = {}
        self.epochs: list[str] = []
        self.subscribed = threading.Event()
        self.forged = 0
        self._last: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auditor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._session()
            except (redis.RedisError, OSError, ValueError):
                self.subscribed.clear()
                self._stopping.wait(0.05)

    def _session(self) -> None:
        raw = make_redis(self.redis_url, decode_responses=False, socket_connect_timeout=1)
        client = make_redis(self.redis_url, socket_connect_timeout=1, socket_timeout=5)
        pubsub = raw.pubsub()
        try:
            pubsub.subscribe(self.channel)
            deadline = time.monotonic() + 5
            while True:
                message = pubsub.get_message(timeout=0.5)
                if message and message["type"] == "subscribe":
                    break
                if time.monotonic() > deadline:
                    raise redis.TimeoutError("no SUBSCRIBE confirmation")
            self.catch_up(client)
            self.subscribed.set()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message and message["type"] == "message":
                    self._record(message["data"], raw)
        finally:
            pubsub.close()
            raw.close()
            client.close()

    def catch_up(self, client=None) -> None:
        """Record every retained signal of the current epoch not seen yet."""
        client = client or make_redis(self.redis_url, socket_connect_timeout=1, socket_timeout=5)
        epoch = client.get(EPOCH_KEY)
        if not epoch:
            return
        after = self._last.get(epoch, 0)
        while True:
            batch = history.read_range(client, after, count=1000)
            if not batch:
                return
            for signal in batch:
                self._record_signal(signal)
            after = batch[-1]["seq"]

    def _record(self, data: bytes, client) -> None:
        try:
            signal = json.loads(data)
        except (ValueError, RecursionError):  # hostile scenarios publish garbage on the channel too
            return
        if isinstance(signal, dict) and isinstance(signal.get("seq"), int) and signal.get("epoch"):
            try:
                stored = client.xrange(HISTORY_KEY, f"{signal['seq']}-0", f"{signal['seq']}-0")
                epoch = client.get(EPOCH_KEY)
            except (redis.RedisError, OSError):
                stored = None  # Redis just went away: the project's publisher is the only one numbering then
            else:
                if epoch is None or epoch.decode() != signal["epoch"] or not stored or stored[0][1][b"sig"] != data:
                    with self.lock:
                        self.forged += 1
                    return
        self._record_signal(signal)

    def _record_signal(self, signal) -> None:
        if (
            not isinstance(signal, dict)
            or not isinstance(signal.get("seq"), int)
            or not signal.get("epoch")
            or not signal.get("id")
        ):
            return
        key = (signal["epoch"], signal["seq"])
        with self.lock:
            if key in self.produced:
                return
            if key[0] not in self.epochs:
                self.epochs.append(key[0])
            self.produced[key] = Produced(
                signal["id"],
                time.monotonic(),
                signal.get("type", ""),
                signal.get("price", 0.0),
                signal.get("emitted_at", ""),
            )
            self._last[key[0]] = max(self._last.get(key[0], 0), key[1])

    def mark(self) -> int:
        """A position in the ledger: how many signals were recorded so far."""
        with self.lock:
            return len(self.produced)

    def since(self, mark: int) -> dict[Key, Produced]:
        """Signals recorded after MARK, in the order seen."""
        with self.lock:
            return dict(list(self.produced.items())[mark:])

    def count_since(self, mark: int) -> int:
        """How many signals were recorded after MARK."""
        with self.lock:
            return len(self.produced) - mark

    def wait_quiet(self, quiet_s: float = 1.5, timeout: float = 60) -> None:
        """Wait until nothing new was recorded for QUIET_S seconds (production stopped and drained)."""
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = self.mark()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                return
            time.sleep(0.1)
        raise AssertionError(f"production did not stop within {timeout}s")

    def stop(self) -> None:
        """End the background thread."""
        self._stopping.set()
        self._thread.join(5)


@dataclass
class Tally:
    """Deliveries of a set of produced signals to a set of clients."""

    produced: int = 0
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    stray: int = 0
    clients: int = 0
    details: list[str] = field(default_factory=list)


def tally(produced: dict[Key, Produced], epochs: list[str], records: list[ClientRecord]) -> Tally:
    """Compare what each client should have got (everything produced after its first cursor) with what it got."""
    by_epoch: dict[str, list[int]] = {}
    for epoch, seq in produced:
        by_epoch.setdefault(epoch, []).append(seq)
    produced_ranges = {e: to_ranges(s) for e, s in by_epoch.items()}
    order = {e: i for i, e in enumerate(epochs)}
    result = Tally(produced=len(produced), clients=len(records))
    for n, record in enumerate(records):
        if record.start is None:
            result.details.append(f"client {n} never got a welcome")
            continue
        start_epoch, start_seq = record.start
        start_rank = order.get(start_epoch, -1)
        expected = delivered = 0
        for epoch, ranges in produced_ranges.items():
            rank = order.get(epoch, len(order))
            if start_rank >= 0 and rank < start_rank:
                continue  # produced before this client's first cursor
            wanted = clip(ranges, start_seq) if epoch == start_epoch else ranges
            got = record.ranges.get(epoch, [])
            expected += size(wanted)
            delivered += overlap(wanted, got)
        received = sum(size(r) for r in record.ranges.values())
        in_produced = sum(overlap(record.ranges[e], produced_ranges.get(e, [])) for e in record.ranges)
        lost = expected - delivered
        result.expected += expected
        result.delivered += delivered
        result.lost += lost
        result.duplicated += record.dups
        result.stray += received - in_produced
        if lost or record.dups:
            missing = _missing(produced_ranges, record, start_rank, order)
            result.details.append(
                f"client {n}: start {record.start}, lost {lost}, dups {record.dups}, "
                f"connects {record.connects}, resyncs {record.resyncs}, missing e.g. {missing}"
            )
    return result


def _missing(produced_ranges, record, start_rank, order) -> list[Key]:
    out = []
    start_epoch, start_seq = record.start
    for epoch, ranges in produced_ranges.items():
        if start_rank >= 0 and order.get(epoch, len(order)) < start_rank:
            continue
        got = record.ranges.get(epoch, [])
        for a, b in ranges:
            for seq in range(a, b + 1):
                if epoch == start_epoch and seq <= start_seq:
                    continue
                if not any(x <= seq <= y for x, y in got):
                    out.append((epoch[-8:], seq))
                    if len(out) >= 5:
                        return out
    return out


def republished_ids(produced: dict[Key, Produced]) -> int:
    """How many signal ids were published under more than one (epoch, seq)."""
    counts = Counter(p.id for p in produced.values())
    return sum(n - 1 for n in counts.values() if n > 1)


def bar_times(produced: dict[Key, Produced]) -> dict[str, list[int]]:
    """Bar open times (ms) of the signals produced, per symbol, sorted (id = symbol:strategy:tf:bar_ms:type)."""
    out: dict[str, list[int]] = {}
    for item in produced.values():
        parts = item.id.split(":")
        if len(parts) >= 5 and parts[-2].isdigit():
            out.setdefault(parts[0], []).append(int(parts[-2]))
    return {symbol: sorted(times) for symbol, times in out.items()}


def missed_bars(produced: dict[Key, Produced], bar_ms: int) -> dict[str, list[int]]:
    """Per symbol, the bar times with no signal between the first and the last one produced."""
    out = {}
    for symbol, times in bar_times(produced).items():
        gaps = [t for a, b in zip(times, times[1:]) for t in range(a + bar_ms, b, bar_ms)]
        if gaps:
            out[symbol] = gaps
    return out
