"""The outcome scorer's REGISTER, RECORD and DONE scripts run directly against the suite's Redis: their effect on
the outcome, pending, stats and index keys, spelled out here rather than derived, and hand-checked numbers."""

from tasks.outcome_scripts import (
    SCRIPTS,
    HorizonOutcome,
    Record,
    Registration,
    done_command,
    record_command,
    register_command,
)
from tasks.redis_scripts import run_commands

EPOCH = "e1"
OUTCOME = "qs:outcome:e1:7"
PENDING = "qs:outcome-pending:1m:BTCUSDT"
PAIRS = "qs:outcome-pending-pairs"
STATS = "qs:stats:e1:sma"
INDEX = "qs:stats-index:e1"
OUTSIDE_INDEX = "qs:stats-outside-index:e1"
NOT_COUNTED = "qs:stats-not-counted:e1"
BAR_MS = 1_700_000_040_000


def registration(seq=7, strategy="sma", late="", kept_bar="", max_entries=10):
    """The named arguments of a scan signal of STRATEGY on BTCUSDT 1m at BAR_MS."""
    return Registration(
        epoch=EPOCH,
        seq=seq,
        signal_id=f"id{seq}",
        symbol="BTCUSDT",
        timeframe="1m",
        strategy=strategy,
        bar_ms=BAR_MS,
        stats_key=f"qs:stats:e1:{strategy}",
        stats_index_key=INDEX,
        other_index_key=OUTSIDE_INDEX,
        counted_under=strategy,
        member=f"member{seq}",
        uncounted_member=f"uncounted{seq}",
        late=late,
        kept_bar=kept_bar,
        late_if_kept="kept already",
        max_entries=max_entries,
        outcome_ttl_s=900,
        stats_ttl_s=600,
    )


def run(client, *commands):
    """The replies of COMMANDS, run in one round trip."""
    return run_commands(client, list(commands), SCRIPTS)


def test_an_on_time_signal_is_counted_and_becomes_pending_once(redis_client):
    assert run(redis_client, register_command(registration())) == [1]

    assert redis_client.hgetall(OUTCOME) == {"id": "id7", "sym": "BTCUSDT", "strategy": "sma"}
    assert redis_client.hgetall(STATS) == {"*|signals": "1", "BTCUSDT|signals": "1"}
    assert redis_client.smembers(INDEX) == {"sma"}
    assert redis_client.zrange(PENDING, 0, -1, withscores=True) == [("member7", float(BAR_MS))]
    assert redis_client.smembers(PAIRS) == {"1m:BTCUSDT"}
    assert 890 < redis_client.ttl(PENDING) <= 900 and 590 < redis_client.ttl(STATS) <= 600

    assert run(redis_client, register_command(registration())) == [0]  # the claim: counted once
    assert redis_client.hget(STATS, "*|signals") == "1"


def test_a_late_signal_is_only_marked_unscored(redis_client):
    assert run(redis_client, register_command(registration(late="too late"))) == [3]

    assert redis_client.hget(OUTCOME, "unscored") == "too late"
    assert not redis_client.exists(STATS, PENDING, PAIRS, INDEX)


def test_a_signal_whose_first_horizon_bar_is_kept_already_is_late(redis_client):
    redis_client.hset("qs:chart-meta:1m:BTCUSDT", "last", BAR_MS + 60_000)

    assert run(redis_client, register_command(registration(kept_bar=str(BAR_MS + 60_000)))) == [3]
    assert redis_client.hget(OUTCOME, "unscored") == "kept already"
    assert run(redis_client, register_command(registration(seq=8, kept_bar=str(BAR_MS + 120_000)))) == [1]
    assert redis_client.hget("qs:outcome:e1:8", "unscored") is None


def test_a_new_entry_past_max_entries_is_scored_but_not_counted(redis_client):
    redis_client.sadd(INDEX, "old")
    redis_client.sadd(OUTSIDE_INDEX, '["http","x"]')  # two entries across both indexes reach max_entries=2

    replies = run(
        redis_client,
        register_command(registration(seq=7, strategy="new", max_entries=2)),
        register_command(registration(seq=8, strategy="new", max_entries=2)),
        register_command(registration(seq=9, strategy="old", max_entries=2)),
    )

    assert replies == [2, 2, 1]  # "old" has its entry: still counted
    assert redis_client.get(NOT_COUNTED) == "2"
    assert not redis_client.exists("qs:stats:e1:new")
    assert redis_client.smembers(INDEX) == {"old"}
    assert redis_client.hget("qs:stats:e1:old", "*|signals") == "1"
    assert set(redis_client.zrange(PENDING, 0, -1)) == {"uncounted7", "uncounted8", "member9"}


def record(stats_key=STATS, left="", outcomes=((1, 0.02, "a1"), (5, -0.01, "a5"))):
    """RECORD's command for signal 7's OUTCOMES (horizon, return, announcement), pending as member7."""
    scored = [HorizonOutcome(h, r, text) for h, r, text in outcomes]
    return record_command(
        Record(EPOCH, 7, "BTCUSDT", "1m", stats_key, "chan:outcomes", "member7", left, BAR_MS, scored, 900, 600)
    )


def test_outcomes_are_stored_counted_and_announced_once(redis_client):
    redis_client.zadd(PENDING, {"member7": BAR_MS})
    redis_client.sadd(PAIRS, "1m:BTCUSDT")
    pubsub = redis_client.pubsub()
    pubsub.subscribe("chan:outcomes")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"

    assert run(redis_client, record(), record()) == [2, 0]  # the second stores, counts and announces nothing

    assert redis_client.hgetall(OUTCOME) == {"1": "0.02", "5": "-0.01"}
    stats = redis_client.hgetall(STATS)
    assert stats == {
        "*|n|1": "1", "*|sum|1": "0.02", "*|hits|1": "1",
        "*|n|5": "1", "*|sum|5": "-0.01", "*|hits|5": "0",
        "BTCUSDT|n|1": "1", "BTCUSDT|sum|1": "0.02", "BTCUSDT|hits|1": "1",
        "BTCUSDT|n|5": "1", "BTCUSDT|sum|5": "-0.01", "BTCUSDT|hits|5": "0",
    }  # fmt: skip
    announced = [pubsub.get_message(timeout=5) for _ in range(2)]
    assert [m["data"] for m in announced] == ["a1", "a5"]
    assert pubsub.get_message(timeout=0.1) is None  # the replay announced nothing
    pubsub.close()
    assert not redis_client.exists(PENDING, PAIRS)  # its last pending signal done: the pair leaves the set


def test_sums_add_up_across_signals(redis_client):
    first = record(outcomes=((1, 0.25, "a"),))
    second = record_command(
        Record(EPOCH, 8, "ETHUSDT", "1m", STATS, "chan:outcomes", "m8", "", BAR_MS, [HorizonOutcome(1, -0.5, "b")])
    )

    run(redis_client, first, second)

    assert redis_client.hget(STATS, "*|n|1") == "2"
    assert float(redis_client.hget(STATS, "*|sum|1")) == -0.25  # 0.25 - 0.5
    assert redis_client.hget(STATS, "*|hits|1") == "1"
    assert redis_client.hget(STATS, "ETHUSDT|sum|1") == "-0.5"


def test_a_partly_scored_signal_stays_pending_under_its_new_member(redis_client):
    redis_client.zadd(PENDING, {"member7": BAR_MS})
    redis_client.sadd(PAIRS, "1m:BTCUSDT")

    assert run(redis_client, record(left="member7 after h1", outcomes=((1, 0.02, "a1"),))) == [1]

    assert redis_client.zrange(PENDING, 0, -1, withscores=True) == [("member7 after h1", float(BAR_MS))]
    assert redis_client.smembers(PAIRS) == {"1m:BTCUSDT"}


def test_an_outcome_of_a_refused_entry_is_stored_and_counted_nowhere(redis_client):
    redis_client.zadd(PENDING, {"member7": BAR_MS})

    assert run(redis_client, record(stats_key="")) == [2]

    assert redis_client.hgetall(OUTCOME) == {"1": "0.02", "5": "-0.01"}
    assert redis_client.keys("qs:stats*") == []


def test_done_drops_a_member_and_the_pair_with_its_last(redis_client):
    redis_client.zadd(PENDING, {"m1": 1, "m2": 2})
    redis_client.sadd(PAIRS, "1m:BTCUSDT", "1m:ETHUSDT")

    run(redis_client, done_command("1m:BTCUSDT", "m1"))
    assert redis_client.zrange(PENDING, 0, -1) == ["m2"]
    assert redis_client.smembers(PAIRS) == {"1m:BTCUSDT", "1m:ETHUSDT"}

    run(redis_client, done_command("1m:BTCUSDT", "m2"))
    assert not redis_client.exists(PENDING)
    assert redis_client.smembers(PAIRS) == {"1m:ETHUSDT"}


def test_scripts_lost_by_redis_are_loaded_again(redis_client):
    redis_client.script_flush()

    assert run(redis_client, register_command(registration())) == [1]
    assert redis_client.zrange(PENDING, 0, -1) == ["member7"]
