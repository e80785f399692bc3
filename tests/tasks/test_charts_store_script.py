"""The chart store's APPEND script run directly against the suite's Redis: its effect on the pair's keys."""

from tasks.charts_store import SCRIPTS, BarsAppend, append_command
from tasks.redis_scripts import run_commands

BARS = "qs:chart:1m:BTCUSDT"  # the keys spelled out, not derived, so a renamed key fails here
META = "qs:chart-meta:1m:BTCUSDT"


def append(client, bars, anchored=False, layout="L1", max_bars=3, ttl_s=600):
    """Run APPEND once; its reply."""
    command = append_command(BarsAppend("1m", "BTCUSDT", layout, bars, anchored, max_bars, ttl_s))
    return run_commands(client, [command], SCRIPTS)[0]


def test_new_bars_are_appended_oldest_first_trimmed_to_max_bars(redis_client):
    reply = append(redis_client, [(1000, "a"), (2000, "b"), (3000, "c"), (4000, "d")])

    assert reply == 1
    assert redis_client.lrange(BARS, 0, -1) == ["b", "c", "d"]  # max_bars=3 keeps the newest three
    assert redis_client.hgetall(META) == {"layout": "L1", "last": "4000"}
    assert 590 < redis_client.ttl(BARS) <= 600 and 590 < redis_client.ttl(META) <= 600


def test_bars_not_newer_than_the_last_stored_are_skipped(redis_client):
    append(redis_client, [(1000, "a"), (2000, "b")])

    reply = append(redis_client, [(2000, "b again"), (3000, "c")], anchored=True)  # anchor 2000 is stored last

    assert reply == 1
    assert redis_client.lrange(BARS, 0, -1) == ["a", "b", "c"]
    assert redis_client.hget(META, "last") == "3000"


def test_an_anchor_the_store_does_not_reach_appends_nothing(redis_client):
    append(redis_client, [(1000, "a")])

    reply = append(redis_client, [(2000, "b"), (3000, "c")], anchored=True)  # a gap: 2000 was never stored

    assert reply == 0
    assert redis_client.lrange(BARS, 0, -1) == ["a"]
    assert redis_client.hget(META, "last") == "1000"


def test_unanchored_bars_fill_a_store_that_does_not_reach(redis_client):
    append(redis_client, [(1000, "a")])

    assert append(redis_client, [(1000, "a"), (2000, "b"), (3000, "c")]) == 1

    assert redis_client.lrange(BARS, 0, -1) == ["a", "b", "c"]


def test_a_new_layout_replaces_the_stored_bars(redis_client):
    append(redis_client, [(1000, "a"), (2000, "b")])

    reply = append(redis_client, [(2000, "B"), (3000, "C")], layout="L2")

    assert reply == 1
    assert redis_client.lrange(BARS, 0, -1) == ["B", "C"]  # 2000 again: the old bars went with their layout
    assert redis_client.hgetall(META) == {"layout": "L2", "last": "3000"}
