"""Publisher.publish_signal against a real Redis: atomic history + publish, seq, epochs, dedupe, cap."""

import dataclasses
import json
import time

import pytest

from backend import history
from backend.publisher import Publisher, SignalTooLarge
from backend.settings import Settings
from backend.signal_schema import InvalidSignal


def test_publish_numbers_stores_and_broadcasts(redis_client, publisher):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("quantum_signals")

    stored = [
        publisher.publish_signal({"type": "BUY", "price": 1.5 + i, "symbol": "BTCUSDT", "id": f"p{i}"})
        for i in range(3)
    ]

    live = []
    deadline = time.monotonic() + 10
    while len(live) < 3 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if message:
            live.append(json.loads(message["data"]))
    assert [s["seq"] for s in stored] == [1, 2, 3]
    assert live == stored == history.read_range(redis_client, 0)
    assert stored[0]["v"] == 1 and stored[0]["emitted_at"].endswith("Z")
    assert history.cursor(redis_client) == (stored[0]["epoch"], 3)


def test_duplicate_id_is_not_published_twice(redis_client, publisher):
    first = publisher.publish_if_new({"type": "BUY", "price": 1, "id": "same"})
    again = publisher.publish_if_new({"type": "BUY", "price": 1, "id": "same"})
    stored = publisher.publish_signal({"type": "BUY", "price": 1, "id": "same"})

    assert first is not None and again is None
    assert stored == first
    assert history.cursor(redis_client)[1] == 1


def test_publish_tells_a_new_signal_from_a_duplicate_in_one_step(redis_client, publisher):
    first, created = publisher.publish({"type": "SELL", "price": 2, "id": "twice"})
    again, created_again = publisher.publish({"type": "SELL", "price": 3, "id": "twice"})

    assert (created, created_again) == (True, False)
    assert again == first and again["price"] == 2
    assert history.cursor(redis_client)[1] == 1


def test_from_settings_takes_the_channel_and_limits(redis_client):
    settings = dataclasses.replace(Settings(), signal_channel="elsewhere", history_maxlen=7, max_signal_bytes=300)

    publisher = Publisher.from_settings(settings, redis_client)

    assert (publisher.client, publisher.channel, publisher.history_maxlen, publisher.max_bytes) == (
        redis_client,
        "elsewhere",
        7,
        300,
    )


def test_history_is_capped(redis_client):
    publisher = Publisher.from_settings(dataclasses.replace(Settings(), history_maxlen=5), redis_client)

    for i in range(12):
        publisher.publish_signal({"type": "SELL", "price": 1 + i, "id": f"c{i}"})

    assert [s["seq"] for s in history.read_range(redis_client, 0)] == [8, 9, 10, 11, 12]


def test_lost_redis_data_starts_a_new_epoch(redis_client, publisher):
    old = publisher.publish_signal({"type": "BUY", "price": 1, "id": "e1"})

    redis_client.flushall()
    new = publisher.publish_signal({"type": "BUY", "price": 1, "id": "e2"})

    assert new["seq"] == 1 and new["epoch"] != old["epoch"]


def test_invalid_or_oversized_signal_is_refused_and_nothing_stored(redis_client):
    publisher = Publisher.from_settings(
        dataclasses.replace(Settings(), history_maxlen=100, max_signal_bytes=200), redis_client
    )

    with pytest.raises(InvalidSignal, match='"price"'):
        publisher.publish_signal({"type": "BUY", "price": float("nan")})
    with pytest.raises(SignalTooLarge, match="exceeds MAX_SIGNAL_BYTES=200"):
        publisher.publish_signal({"type": "BUY", "price": 1, "reason": "x" * 300})

    assert history.read_range(redis_client, 0) == []


def test_recent_filters_by_symbol_newest_first_then_ordered(redis_client, publisher):
    for i in range(30):
        publisher.publish_signal({"type": "BUY", "price": 1 + i, "symbol": "A" if i % 3 == 0 else "B", "id": f"s{i}"})

    assert [s["seq"] for s in history.recent(redis_client, since=0, symbol="A", limit=3)] == [22, 25, 28]
    assert [s["seq"] for s in history.recent(redis_client, since=26, limit=100)] == [27, 28, 29, 30]
