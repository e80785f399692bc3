"""History reads of one symbol through its index (real Redis): what they return, and what they cost."""

from backend import history
from backend.publisher import Publisher
from backend.signal_schema import EPOCH_KEY, HISTORY_SYMBOL_PREFIX


def command_calls(client, *names: str) -> int:
    """How many times Redis ran the commands NAMES since its stats were last reset (INFO commandstats)."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in names)


def publish(publisher: Publisher, symbols: list[str]) -> list[dict]:
    """One BUY per symbol in SYMBOLS, in order; the stored signals."""
    return [publisher.publish_signal({"type": "BUY", "price": 1.0 + i, "symbol": s}) for i, s in enumerate(symbols)]


def test_a_symbol_read_equals_the_filtered_history(publisher, redis_client):
    stored = publish(publisher, ["BTCUSDT", "ETHUSDT", "BTCUSDT", "XRPUSDT", "BTCUSDT"] * 20)

    btc = [s for s in stored if s["symbol"] == "BTCUSDT"]
    assert history.recent(redis_client, symbol="BTCUSDT", limit=1000) == btc
    assert history.recent(redis_client, symbol="BTCUSDT", limit=7) == btc[-7:]
    assert history.recent(redis_client, since=btc[-3]["seq"], symbol="BTCUSDT") == btc[-2:]
    assert history.recent(redis_client, symbol="XRPUSDT", limit=1) == [stored[-2]]


def test_a_symbol_with_no_signal_reads_no_history_entry(publisher, redis_client):
    publish(publisher, ["BTCUSDT"] * 2000)
    redis_client.config_resetstat()

    assert history.recent(redis_client, symbol="NOPEUSDT", limit=1000) == []

    assert command_calls(redis_client, "xrange", "xrevrange", "xread") == 0


def test_the_index_is_trimmed_with_the_history(redis_client):
    publisher = Publisher(redis_client, "quantum_signals", history_maxlen=10, max_bytes=65536)
    stored = publish(publisher, ["BTCUSDT", "ETHUSDT", "ETHUSDT"] * 10)
    epoch = stored[0]["epoch"]

    kept = stored[-10:]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        seqs = [int(seq) for seq in redis_client.zrange(f"{HISTORY_SYMBOL_PREFIX}{epoch}:{symbol}", 0, -1)]
        assert seqs == [s["seq"] for s in kept if s["symbol"] == symbol]
        assert history.recent(redis_client, symbol=symbol) == [s for s in kept if s["symbol"] == symbol]


def test_a_redis_that_lost_its_data_starts_the_index_again_with_the_history(publisher, redis_client):
    publish(publisher, ["BTCUSDT"] * 3)
    redis_client.delete(EPOCH_KEY)  # what a restart without data looks like to the publish step

    after = publish(publisher, ["ETHUSDT"] * 3)

    assert [s["seq"] for s in after] == [1, 2, 3]
    assert history.recent(redis_client, symbol="BTCUSDT") == []
    assert history.recent(redis_client, symbol="ETHUSDT") == after


def test_a_history_older_than_the_index_is_still_read(publisher, redis_client):
    stored = publish(publisher, ["BTCUSDT", "ETHUSDT"] * 3)
    epoch = stored[0]["epoch"]
    # As a history written before the index existed: no index, no start mark; later publishes start both.
    redis_client.delete(f"{HISTORY_SYMBOL_PREFIX}{epoch}:BTCUSDT", f"qs:history-sym-start:{epoch}")
    assert history.recent(redis_client, symbol="BTCUSDT") == stored[0::2]

    later = publish(publisher, ["BTCUSDT"])

    assert history.recent(redis_client, symbol="BTCUSDT") == stored[0::2] + later
    assert history.recent(redis_client, symbol="BTCUSDT", limit=2) == [stored[4], *later]
