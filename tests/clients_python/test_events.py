"""Outcomes and refusals through a real web process; the typed records and argument errors."""

from __future__ import annotations

import pytest

from backend.outcomes import announcement, encode_number
from backend.redis_client import make_redis
from backend.signal_schema import outcome_key
from harness.polling import wait_until
from quantum_signals_client import Backoff, Client, ClientError, ConnectionRefused, Outcome, ProtocolError, Signal
from tests.clients_python.conftest import publish_many


def test_outcomes_are_yielded_when_asked(signals_web, own_redis, own_publisher, collect):
    bot = collect(signals_web.url, cursor=None, outcomes=True)
    bot.wait_joined()
    (signal,) = publish_many(own_publisher, 1)
    bot.wait_signals(1)

    # The worker's step, by hand: store the outcome, then announce it on the outcome channel.
    redis = make_redis(own_redis.url)
    redis.hset(outcome_key(signal["epoch"], 1), mapping={"5": encode_number(0.0125), "id": "s0", "sym": "BTCUSDT"})
    redis.publish("quantum_signals:outcomes", announcement(signal["epoch"], 1, 5))
    redis.close()

    outcomes = wait_until(lambda: [e for e in bot.events if isinstance(e, Outcome)], message="the outcome")
    assert outcomes == [Outcome(signal["epoch"], 1, "s0", 5, 0.0125)]


def test_a_wrong_token_is_raised_not_retried(start_web, own_redis, tmp_path):
    web = start_web(REDIS_URL=own_redis.url, SIGNALS_AUTH_TOKEN="right")
    client = Client(web.url, token="wrong", cursor=None)

    with pytest.raises(ConnectionRefused, match="unauthorized"):
        next(client)
    client.close()


def test_the_right_token_is_let_in(start_web, own_redis, own_publisher, collect):
    web = start_web(REDIS_URL=own_redis.url, SIGNALS_AUTH_TOKEN="right")
    bot = collect(web.url, token="right", cursor=None, since=0)
    publish_many(own_publisher, 1)

    assert [signal.seq for signal in bot.wait_signals(1)] == [1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "127.0.0.1:5000"}, "http:// or https://"),
        ({"symbols": "BTCUSDT"}, r"\['BTCUSDT'\]"),
        ({"since": -1}, "since must be a seq"),
        ({"transports": ["carrier-pigeon"]}, "transports"),
    ],
)
def test_bad_arguments_say_what_to_pass(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Client(**{"url": "http://127.0.0.1:1", "cursor": None, **kwargs})


def test_a_signal_keeps_its_payload_and_types_its_fields():
    payload = {"seq": 7, "epoch": "e1", "type": "SELL", "price": 2.5, "symbol": "BTC/USD", "indicators": {"x": None}}

    signal = Signal.from_payload(payload)

    assert (signal.seq, signal.epoch, signal.type, signal.price, signal.symbol) == (7, "e1", "SELL", 2.5, "BTC/USD")
    assert signal.indicators == {"x": None} and signal.raw == payload and signal.strategy is None


@pytest.mark.parametrize("payload", [[], {"type": "BUY"}, {"type": "BUY", "price": "1"}, {"price": 1}])
def test_a_signal_without_type_and_price_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError, match="new_signal"):
        Signal.from_payload(payload)


@pytest.mark.parametrize("payload", [None, {"epoch": "e", "seq": "1", "h": 1, "r": 0.1}, {"epoch": "e", "seq": 1}])
def test_an_outcome_not_of_the_contract_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError, match="signal_outcome"):
        Outcome.from_payload(payload)


def test_subscribe_changes_the_filter_on_the_live_connection(signals_web, own_publisher, collect):
    bot = collect(signals_web.url, cursor=None, symbols=["ETHUSDT"])
    bot.wait_joined()

    assert bot.client.subscribe(["BTCUSDT"]) == ["BTCUSDT"]
    eth = own_publisher.publish_signal({"type": "BUY", "price": 1, "symbol": "ETHUSDT", "id": "e"})
    btc = own_publisher.publish_signal({"type": "BUY", "price": 2, "symbol": "BTCUSDT", "id": "b"})

    assert [signal.seq for signal in bot.wait_signals(1)] == [btc["seq"]]
    assert eth["seq"] < btc["seq"]
    with pytest.raises(ClientError, match="refused subscribe"):
        bot.client.subscribe(["not a symbol"])


def test_backoff_doubles_with_jitter_up_to_its_cap():
    backoff = Backoff(first=0.5, cap=4.0)

    delays = [[backoff.delay(attempt) for _ in range(200)] for attempt in range(6)]

    for attempt, drawn in enumerate(delays):
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= min(drawn) and max(drawn) <= ceiling
        assert max(drawn) - min(drawn) > ceiling / 10  # jittered, not one value
