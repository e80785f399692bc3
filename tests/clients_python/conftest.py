"""The client against a real stack: a Redis of the test's own (persisted, so it may be restarted), the Procfile's
web on it, the project's Publisher, and the client iterated in a thread of the test."""

from __future__ import annotations

import threading

import pytest

from backend.embedded_redis import EmbeddedRedis
from backend.publisher import Publisher
from backend.redis_client import make_redis
from harness.polling import wait_until
from harness.processes import WebServer
from harness.redis import make_publisher
from quantum_signals_client import Client, Signal


@pytest.fixture
def own_redis():
    """A redis-server only this test uses (append-only file on), so it may be stopped and restarted."""
    server = EmbeddedRedis(persist=True).start()
    yield server
    server.cleanup()


@pytest.fixture
def signals_web(start_web, own_redis) -> WebServer:
    """The Procfile's web process on the test's own Redis."""
    return start_web(REDIS_URL=own_redis.url)


@pytest.fixture
def own_publisher(own_redis) -> Publisher:
    """The project's publisher on the test's own Redis."""
    client = make_redis(own_redis.url)
    yield make_publisher(client)
    client.close()


class Collector:
    """A bot in a thread: iterates CLIENT, keeping every event; each is finished when it asks for the next."""

    def __init__(self, client: Client):
        """Start iterating."""
        self.client = client
        self.events: list = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.client:
                self.events.append(event)
        except Exception as exc:  # noqa: BLE001 - kept for the test to assert on
            self.error = exc

    def signals(self) -> list[Signal]:
        """The signals received so far."""
        return [event for event in list(self.events) if isinstance(event, Signal)]

    def wait_signals(self, count: int, timeout: float = 20.0) -> list[Signal]:
        """Wait until COUNT signals arrived; return them all."""
        wait_until(lambda: len(self.signals()) >= count or self.error, timeout, message=f"{count} signals")
        assert self.error is None, f"the client failed: {self.error!r}"
        return self.signals()

    def wait_joined(self, timeout: float = 20.0) -> None:
        """Wait until the client is connected and its cursor saved (a fresh client saves the live position)."""
        wait_until(lambda: self.client.cursor is not None or self.error, timeout, message="the client's cursor")
        assert self.error is None, f"the client failed: {self.error!r}"

    def close(self) -> None:
        """Close the client and wait for the thread."""
        self.client.close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the client's iteration did not end on close()"


@pytest.fixture
def collect():
    """Factory: a Collector on Client(URL, **options); closed after the test."""
    collectors: list[Collector] = []

    def make(url: str, **options) -> Collector:
        collector = Collector(Client(url, **options))
        collectors.append(collector)
        return collector

    yield make
    for collector in collectors:
        collector.close()


def seqs(signals: list[Signal]) -> list[tuple[str | None, int | None]]:
    """(epoch, seq) of each signal."""
    return [(signal.epoch, signal.seq) for signal in signals]


def publish_many(publisher: Publisher, count: int, start: int = 0) -> list[dict]:
    """COUNT signals through the publisher; the stored ones."""
    return [
        publisher.publish_signal({"type": "BUY", "price": 100 + i, "symbol": "BTCUSDT", "id": f"s{i}"})
        for i in range(start, start + count)
    ]
