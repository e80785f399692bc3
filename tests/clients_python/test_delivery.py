"""Delivery through crashes: every signal once, in seq order, against the Procfile's web and a real Redis."""

from __future__ import annotations

import asyncio
import json

from harness.loops import run as run_loop
from harness.polling import wait_until
from harness.processes import WebServer
from harness.redis import redis_cli_publish, wipe_redis_data
from quantum_signals_client import AsyncClient, Cursor, CursorFile, Resync, Signal
from tests.clients_python.conftest import publish_many, seqs


def test_a_burst_of_1000_arrives_in_order_none_missing(signals_web, own_publisher, collect, tmp_path):
    bot = collect(signals_web.url, cursor=tmp_path / "bot.cursor")
    bot.wait_joined()

    sent = publish_many(own_publisher, 1000)

    received = bot.wait_signals(1000, timeout=60)
    assert seqs(received) == seqs_of(sent)
    wait_until(lambda: bot.client.cursor.seq == 1000, message="the cursor at the 1000th (the bot asked for more)")


def test_web_killed_mid_stream_resumes_with_no_gap_and_no_repeat(signals_web, own_publisher, collect, tmp_path):
    bot = collect(signals_web.url, cursor=tmp_path / "bot.cursor")
    bot.wait_joined()
    sent = publish_many(own_publisher, 200)
    bot.wait_signals(1)

    signals_web.kill()
    sent += publish_many(own_publisher, 100, start=200)  # while no web runs: they come from history
    env = {k: v for k, v in signals_web.env.items() if k != "PORT"}
    restarted = WebServer(env, signals_web.log_path.parent, name="web-restarted", port=signals_web.port).start()
    try:
        sent += publish_many(own_publisher, 100, start=300)
        received = bot.wait_signals(400, timeout=60)
    finally:
        restarted.stop()

    assert seqs(received) == seqs_of(sent)


def test_redis_restarted_with_its_data_same_epoch_no_gap(signals_web, own_redis, own_publisher, collect, tmp_path):
    bot = collect(signals_web.url, cursor=tmp_path / "bot.cursor")
    bot.wait_joined()
    sent = publish_many(own_publisher, 20)
    bot.wait_signals(20)

    own_redis.stop()  # a clean stop: the append-only file has everything
    own_redis.start()
    sent += publish_many(own_publisher, 20, start=20)

    received = bot.wait_signals(40, timeout=30)
    assert seqs(received) == seqs_of(sent)
    assert len({epoch for epoch, _ in seqs(received)}) == 1
    assert not [event for event in bot.events if isinstance(event, Resync)]


def test_redis_restarted_without_data_says_resync_then_the_new_epoch(
    signals_web, own_redis, own_publisher, collect, tmp_path
):
    cursor = tmp_path / "bot.cursor"
    bot = collect(signals_web.url, cursor=cursor)
    bot.wait_joined()
    before = publish_many(own_publisher, 10)
    bot.wait_signals(10)

    own_redis.stop()
    wipe_redis_data(own_redis)
    own_redis.start()
    after = publish_many(own_publisher, 5, start=10)

    bot.wait_signals(15, timeout=30)
    old, new = before[0]["epoch"], after[0]["epoch"]
    assert old != new
    resync_at = next(i for i, event in enumerate(bot.events) if isinstance(event, Resync))
    assert bot.events[resync_at] == Resync(new, previous=Cursor(old, 10))
    assert seqs(bot.events[:resync_at]) == seqs_of(before)
    assert seqs(bot.events[resync_at + 1 :]) == [(new, seq) for seq in range(1, 6)]
    wait_until(lambda: CursorFile(cursor).load().epoch == new, message="the cursor file in the new epoch")


def test_restarted_client_resumes_from_its_cursor_file(signals_web, own_publisher, collect, tmp_path):
    cursor = tmp_path / "bot.cursor"
    first = collect(signals_web.url, cursor=cursor)
    first.wait_joined()
    sent = publish_many(own_publisher, 5)
    first.wait_signals(5)
    wait_until(lambda: first.client.cursor.seq == 5, message="the 5th finished (the bot asked for the next)")
    first.close()
    sent += publish_many(own_publisher, 5, start=5)  # while no client runs

    second = collect(signals_web.url, cursor=cursor)
    second.wait_signals(5)
    sent += publish_many(own_publisher, 1, start=10)

    assert seqs(second.wait_signals(6)) == seqs_of(sent)[5:]
    assert json.loads(cursor.read_text())["seq"] >= 10


def test_live_only_signals_are_delivered_and_move_no_cursor(signals_web, own_redis, own_publisher, collect, tmp_path):
    bot = collect(signals_web.url, cursor=tmp_path / "bot.cursor")
    bot.wait_joined()
    first = own_publisher.publish_signal({"type": "BUY", "price": 1, "id": "numbered"})
    bot.wait_signals(1)

    redis_cli_publish(own_redis, '{"type":"SELL","price":2}')
    outsider = bot.wait_signals(2)[1]
    assert bot.client.cursor == Cursor(first["epoch"], 1)  # the outsider moves nothing (nothing else was sent)
    own_publisher.publish_signal({"type": "BUY", "price": 3, "id": "numbered-2"})

    received = bot.wait_signals(3)
    assert (outsider.type, outsider.price, outsider.seq, outsider.epoch) == ("SELL", 2, None, None)
    assert seqs([received[0], received[2]]) == [(first["epoch"], 1), (first["epoch"], 2)]


def test_since_replays_the_retained_signals_first(signals_web, own_publisher, collect):
    sent = publish_many(own_publisher, 30)

    bot = collect(signals_web.url, cursor=None, since=10)

    assert seqs(bot.wait_signals(20)) == seqs_of(sent)[10:]
    assert bot.signals()[0] == Signal.from_payload(sent[10])


def test_symbols_filter(signals_web, own_publisher, collect):
    bot = collect(signals_web.url, cursor=None, since=0, symbols=["ETHUSDT"])
    own_publisher.publish_signal({"type": "BUY", "price": 1, "symbol": "BTCUSDT", "id": "b"})
    eth = own_publisher.publish_signal({"type": "SELL", "price": 2, "symbol": "ETHUSDT", "id": "e"})

    bot.wait_signals(1)
    later = own_publisher.publish_signal({"type": "BUY", "price": 3, "symbol": "ETHUSDT", "id": "e2"})

    assert seqs(bot.wait_signals(2)) == seqs_of([eth, later])


def seqs_of(stored: list[dict]) -> list[tuple[str, int]]:
    """(epoch, seq) of each stored signal."""
    return [(signal["epoch"], signal["seq"]) for signal in stored]


def test_a_cursor_of_a_lost_history_gets_resync_then_every_retained_signal(
    signals_web, own_publisher, collect, tmp_path
):
    cursor = tmp_path / "bot.cursor"
    CursorFile(cursor).save(Cursor("20250101T000000Z-deadbeef", 7))  # the bot's last run, before Redis lost it
    sent = publish_many(own_publisher, 3)

    bot = collect(signals_web.url, cursor=cursor)

    bot.wait_signals(3)
    assert bot.events[0] == Resync(sent[0]["epoch"], previous=Cursor("20250101T000000Z-deadbeef", 7))
    assert seqs(bot.events[1:]) == seqs_of(sent)


def test_async_for_gives_the_same(signals_web, own_publisher, tmp_path):
    sent = publish_many(own_publisher, 3)

    async def first_three() -> list:
        received = []
        async with AsyncClient(signals_web.url, cursor=tmp_path / "bot.cursor", since=0) as client:
            async for event in client:
                received.append(event)
                if len(received) == 3:
                    break
        return received

    received = run_loop(asyncio.wait_for(first_three(), 30))
    assert seqs(received) == seqs_of(sent)
    assert CursorFile(tmp_path / "bot.cursor").load() == Cursor(sent[0]["epoch"], 3)  # the block ended cleanly
