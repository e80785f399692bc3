"""Latency histograms (the load generator's log buckets) and their percentiles."""

from __future__ import annotations

import math

BASE_MS = 0.001
FACTOR = 1.02
BUCKETS = 1400
_LOG_FACTOR = math.log(FACTOR)


def bucket_of(ms: float) -> int:
    """Bucket i holds (BASE*F^(i-1), BASE*F^i] ms, as in bench/loadgen.mjs."""
    if ms <= BASE_MS:
        return 0
    return min(BUCKETS - 1, math.ceil(math.log(ms / BASE_MS) / _LOG_FACTOR))


def bucket_value(i: int) -> float:
    """A bucket's representative value: the geometric middle of its bounds (2 % wide)."""
    return BASE_MS * FACTOR ** (i - 0.5) if i > 0 else BASE_MS


class Histogram:
    """Counts per bucket, merged from any number of reports."""

    def __init__(self):
        """Empty."""
        self.counts = [0] * BUCKETS

    def add(self, ms: float) -> None:
        """Count one latency."""
        self.counts[bucket_of(ms)] += 1

    def merge(self, sparse: list[list[int]]) -> None:
        """Add a report's [[bucket, count], …]."""
        for i, count in sparse:
            self.counts[i] += count

    def sparse(self) -> list[list[int]]:
        """[[bucket, count], …] of the non-empty buckets."""
        return [[i, c] for i, c in enumerate(self.counts) if c]

    @property
    def total(self) -> int:
        """How many latencies."""
        return sum(self.counts)

    def percentile(self, p: float) -> float | None:
        """The P-th percentile in ms (None when empty)."""
        total = self.total
        if not total:
            return None
        rank = max(1, math.ceil(total * p / 100))
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return bucket_value(i)
        return bucket_value(BUCKETS - 1)
