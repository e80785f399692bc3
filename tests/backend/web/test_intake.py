"""POST /api/signals, the HTTP intake (TradingView alerts, other services): in this process on the suite's Redis,
then once through a real web process to a real Socket.IO client."""

import json
import logging
from datetime import UTC, timedelta, timezone

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from backend.intake import NUMBER_RE
from backend.logging_setup import BoundedLogFilter
from backend.settings import ConfigError, Settings
from backend.signal_schema import outside_id, signal_id
from harness.polling import wait_until
from tests.fuzz_strategies import (
    JSON_VALUES,
    KEYS,
    MESSAGES,
    PRICES,
    TEXT,
    TYPES,
    VALID_PRICES,
    assert_contract,
    json_text,
)

TOKEN = "alpha-7f3c"
# TradingView's alert message template as it renders: {{strategy.order.action}} is lower case, {{close}} is
# quoted, {{interval}} is "60" for an hour, {{timenow}} is ISO-8601 with Z.
TRADINGVIEW = (
    '{"type": "buy", "price": "60000.5", "symbol": "BTCUSDT", "timeframe": "60", '
    '"bar_time": "2026-11-25T16:42:00Z", "strategy": "tradingview"}'
)
BAR_MS = 1795624920000  # 2026-11-25T16:42:00Z


@pytest.fixture
def intake(make_client):
    """The HTTP test client of an app that takes published signals with TOKEN (or beta)."""
    return make_client(SIGNALS_PUBLISH_TOKEN=f"{TOKEN}, beta")


def post(client, body, token: str | None = TOKEN, in_query: bool = False, content_type: str = "application/json"):
    """POST BODY (text, bytes, or a value sent as JSON) to /api/signals with TOKEN in the header or the query."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}"} if token is not None and not in_query else {}
    url = f"/api/signals?token={token}" if token is not None and in_query else "/api/signals"
    return client.post(url, content=data, headers={**headers, "Content-Type": content_type})


def stored_seqs(client) -> list[int]:
    """The seqs in history, as GET /api/signals answers them."""
    return [signal["seq"] for signal in client.get("/api/signals").json()["signals"]]


def test_a_tradingview_alert_as_text_plain_is_normalized_numbered_and_kept(intake):
    answer = post(intake, TRADINGVIEW, in_query=True, content_type="text/plain")

    assert answer.status_code == 201, answer.json()
    signal = answer.json()
    assert signal["seq"] == 1 and signal["epoch"]
    assert (signal["type"], signal["price"], signal["symbol"], signal["timeframe"]) == ("BUY", 60000.5, "BTCUSDT", "60")
    assert signal["source"] == "webhook" and signal["emitted_at"].endswith("Z")
    assert signal["id"] == outside_id(signal_id("BTCUSDT", "tradingview", "60", BAR_MS, "BUY"))
    assert intake.get("/api/signals").json()["signals"] == [signal]


def test_symbol_bar_time_and_source_are_normalized(intake):
    body = {"type": "Sell", "price": 3, "symbol": "eth/usdt", "bar_time": "2026-11-25T18:42:00.250+02:00"}

    signal = post(intake, {**body, "source": "my-bot", "indicators": {"rsi": "71.5", "atr": 2}}).json()

    assert (signal["type"], signal["price"], signal["symbol"]) == ("SELL", 3, "ETH/USDT")
    assert signal["bar_time"] == "2026-11-25T16:42:00.250Z"
    assert signal["source"] == "my-bot" and signal["indicators"] == {"rsi": 71.5, "atr": 2}
    assert signal["id"].startswith("ext:")  # no timeframe or strategy: nothing to derive an id from, a fresh one


def test_a_retry_answers_200_with_the_stored_signal_and_publishes_nothing(intake):
    first = post(intake, TRADINGVIEW)
    retry = post(intake, TRADINGVIEW)
    given_id = post(intake, {"type": "SELL", "price": 5, "id": "order-17"})
    changed = post(intake, {"type": "SELL", "price": 6, "id": "order-17"})

    assert (first.status_code, retry.status_code, given_id.status_code, changed.status_code) == (201, 200, 201, 200)
    assert retry.json() == first.json()
    assert changed.json() == given_id.json() and changed.json()["price"] == 5
    assert stored_seqs(intake) == [1, 2]


def test_without_an_id_every_post_is_a_new_signal(intake):
    body = {"type": "BUY", "price": 1, "symbol": "BTCUSDT", "timeframe": "1m"}  # no bar_time, no strategy

    assert [post(intake, body).status_code for _ in range(3)] == [201, 201, 201]
    assert stored_seqs(intake) == [1, 2, 3]


@pytest.mark.parametrize("token, in_query", [(TOKEN, False), (TOKEN, True), ("beta", False), ("beta", True)])
def test_any_publish_token_in_the_header_or_the_query_is_accepted(intake, token, in_query):
    assert post(intake, {"type": "BUY", "price": 1}, token=token, in_query=in_query).status_code == 201


@pytest.mark.parametrize(
    "token, in_query",
    [(None, False), ("wrong", False), ("wrong", True), ("", True), (TOKEN + "x", False), (TOKEN[:-1], True)],
)
def test_a_missing_or_wrong_token_is_401_and_nothing_is_stored(intake, token, in_query):
    answer = post(intake, {"type": "BUY", "price": 1}, token=token, in_query=in_query)

    assert answer.status_code == 401 and "unauthorized" in answer.json()["error"]
    assert stored_seqs(intake) == []


def test_basic_auth_or_a_read_token_is_no_publish_token(make_client):
    client = make_client(SIGNALS_PUBLISH_TOKEN=TOKEN, SIGNALS_AUTH_TOKEN="reader")

    basic = client.post("/api/signals", json={"type": "BUY", "price": 1}, headers={"Authorization": f"Basic {TOKEN}"})

    assert basic.status_code == 401
    assert post(client, {"type": "BUY", "price": 1}, token="reader").status_code == 401


def test_publishing_is_403_until_a_publish_token_is_configured(make_client):
    client = make_client(SIGNALS_AUTH_TOKEN="reader")

    for token in (None, "reader", "anything"):
        answer = post(client, {"type": "BUY", "price": 1}, token=token)
        assert answer.status_code == 403
        assert answer.json() == {"error": "publishing over HTTP is disabled: set SIGNALS_PUBLISH_TOKEN"}


def _nested(levels: int) -> dict:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"type": "HOLD", "price": 1}, '"type" must be "BUY" or "SELL"'),
        ({"type": 1, "price": 1}, '"type" must be'),
        ({"price": 1}, '"type" must be'),
        ({"type": "buy"}, '"price" must be a JSON number'),
        ({"type": "buy", "price": "abc"}, '"price" must be a number or a numeric string'),
        ({"type": "buy", "price": "NaN"}, '"price" must be a number or a numeric string'),
        ({"type": "buy", "price": " 1"}, '"price" must be a number or a numeric string'),
        ({"type": "buy", "price": "1_000"}, '"price" must be a number or a numeric string'),
        ({"type": "buy", "price": "-5"}, '"price" must be finite and > 0'),
        ({"type": "buy", "price": "1e999"}, '"price" must be finite and > 0'),
        ({"type": "buy", "price": True}, '"price" must be a JSON number'),
        ({"type": "buy", "price": 1, "symbol": "BTC USDT"}, '"symbol" must be a symbol'),
        ({"type": "buy", "price": 1, "symbol": 42}, '"symbol" must be a symbol'),
        ({"type": "buy", "price": 1, "symbol": "A" * 33}, '"symbol" must be a symbol'),
        ({"type": "buy", "price": 1, "qty": 2, "leverage": 5}, "unknown fields 'qty', 'leverage'"),
        ({"type": "buy", "price": 1, "seq": 99}, "unknown fields 'seq'"),
        ({"type": "buy", "price": 1, "bar_time": "yesterday"}, '"bar_time" must be ISO-8601'),
        ({"type": "buy", "price": 1, "bar_time": "2026-11-25T16:42:00"}, "with a time zone"),
        ({"type": "buy", "price": 1, "bar_time": 1795624920000}, '"bar_time" must be ISO-8601'),
        ({"type": "buy", "price": 1, "timeframe": ""}, '"timeframe" must be printable text'),
        ({"type": "buy", "price": 1, "strategy": "a\nb"}, '"strategy" must be printable text'),
        ({"type": "buy", "price": 1, "id": 7}, '"id" must be printable text'),
        ({"type": "buy", "price": 1, "reason": ["x"]}, '"reason" must be text'),
        ({"type": "buy", "price": 1, "indicators": [1]}, '"indicators" must be an object of numbers'),
        ({"type": "buy", "price": 1, "indicators": _nested(40)}, "\"indicators['a']\" must be a number"),
        ({"type": "buy", "price": 1, "reason": "\ud800"}, "lone surrogate"),
        ([{"type": "buy", "price": 1}], "must be a JSON object, got list"),
        ('"BUY"', "must be a JSON object, got str"),
        (None, "must be a JSON object, got NoneType"),
        ('{"type": "buy", "price": 1', "body is not JSON"),
        ("", "body is not JSON"),
        ('{"type": "buy", "price": NaN}', "body is not JSON"),
        ("[" * 50_000, "nested too deeply"),
        (b'{"type": "buy", "price": 1, "reason": "\xff"}', "not valid UTF-8"),
    ],
)
def test_a_bad_signal_is_400_naming_what_is_wrong(intake, body, reason):
    answer = post(intake, body, content_type="text/plain")

    assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json"
    assert reason in answer.json()["error"], answer.json()
    assert stored_seqs(intake) == []


def test_a_body_over_max_signal_bytes_is_413(make_client):
    small = make_client(SIGNALS_PUBLISH_TOKEN=TOKEN, MAX_SIGNAL_BYTES="1024")
    default = make_client(SIGNALS_PUBLISH_TOKEN=TOKEN)

    over_body = post(small, {"type": "BUY", "price": 1, "reason": "x" * 1100})
    # Under the limit as sent, over it once stored (seq, epoch, emitted_at, source are added).
    over_stored = post(small, {"type": "BUY", "price": 1, "reason": "x" * 960})
    over_default = post(default, {"type": "BUY", "price": 1, "reason": "x" * 70_000})
    # Above the 16 KiB cap on other requests' bodies, well under the default MAX_SIGNAL_BYTES of 64 KiB.
    large_but_fine = post(default, {"type": "BUY", "price": 1, "reason": "x" * 30_000})

    assert over_body.status_code == 413 and "exceeds MAX_SIGNAL_BYTES=1024" in over_body.json()["error"]
    assert over_stored.status_code == 413 and "exceeds MAX_SIGNAL_BYTES=1024" in over_stored.json()["error"]
    assert over_default.status_code == 413
    assert large_but_fine.status_code == 201
    assert stored_seqs(default) == [1]


def test_over_the_publish_rate_limit_is_429_with_retry_after_per_token(make_client):
    client = make_client(SIGNALS_PUBLISH_TOKEN=f"{TOKEN},beta", PUBLISH_RATE_LIMIT="3/minute")

    answers = [post(client, {"type": "BUY", "price": 1}) for _ in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    assert "PUBLISH_RATE_LIMIT" in answers[3].json()["error"]
    assert post(client, {"type": "BUY", "price": 1}, token="beta").status_code == 201  # its own count
    assert post(client, {"type": "BUY", "price": 1}, token="wrong").status_code == 401
    assert stored_seqs(client) == [1, 2, 3, 4]


def test_the_publish_count_is_shared_through_redis_and_keyed_by_no_token(make_client, redis_client):
    first = make_client(SIGNALS_PUBLISH_TOKEN=TOKEN, PUBLISH_RATE_LIMIT="2/minute")
    second = make_client(SIGNALS_PUBLISH_TOKEN=TOKEN, PUBLISH_RATE_LIMIT="2/minute")

    statuses = [post(c, {"type": "BUY", "price": 1}).status_code for c in (first, second, second)]

    assert statuses == [201, 201, 429]  # two apps (two web processes' worth), one count
    assert not [key for key in redis_client.keys("*") if TOKEN in key]


def test_the_per_address_limit_still_covers_the_intake(make_client):
    client = make_client(SIGNALS_PUBLISH_TOKEN=TOKEN, HTTP_RATE_LIMIT="2/minute")

    answers = [post(client, {"type": "BUY", "price": 1}) for _ in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 429]
    assert "HTTP_RATE_LIMIT" in answers[2].json()["error"]


def test_publish_settings_are_read_and_checked():
    settings = Settings.from_env({"SIGNALS_PUBLISH_TOKEN": " a , b,", "PUBLISH_RATE_LIMIT": "10/second;100/minute"})

    assert settings.publish_tokens == ("a", "b") and settings.publish_rate_limit == "10/second;100/minute"
    assert "publish_tokens" not in repr(settings)
    assert (Settings.from_env({}).publish_tokens, Settings.from_env({}).publish_rate_limit) == ((), "120/minute")
    with pytest.raises(ConfigError, match="PUBLISH_RATE_LIMIT='lots' is not a rate limit"):
        Settings.from_env({"PUBLISH_RATE_LIMIT": "lots"})


def test_a_token_in_a_logged_url_is_hidden():
    line = '"POST /api/signals?token=%s&x=1 HTTP/1.1" 201'
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, line, (TOKEN,), None)

    BoundedLogFilter().filter(record)

    assert record.getMessage() == '"POST /api/signals?token=***&x=1 HTTP/1.1" 201'


# What outside senders send: TradingView's renderings (lower-case actions, quoted numbers, its intervals and
# times) among the fuzzer's near-valid and hostile values, and now and then a field the contract lacks.
NUMERIC_TEXT = st.one_of(
    st.from_regex(NUMBER_RE, fullmatch=True), st.floats().map(str), st.integers().map(str), TEXT, st.just("")
)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=23, minutes=59))])
BAR_TIMES = st.one_of(
    st.datetimes(timezones=ZONES).map(lambda moment: moment.isoformat()),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(["2026-11-25T16:42:00Z", "2026-11-25", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]),
    TEXT,
    JSON_VALUES,
)
OUTSIDE_SIGNALS = st.builds(
    lambda extra, base: {**extra, **base},
    st.dictionaries(KEYS, JSON_VALUES, max_size=1),
    st.fixed_dictionaries(
        {
            "type": st.one_of(st.sampled_from(["buy", "sell", "Buy", "SELL", "hold", "ＢＵＹ", "buy "]), TYPES),
            "price": st.one_of(NUMERIC_TEXT, PRICES),
        },
        optional={
            "symbol": st.one_of(st.sampled_from(["BTCUSDT", "btcusdt", "BINANCE:BTCUSDT.P", "ı"]), TEXT, JSON_VALUES),
            "timeframe": st.one_of(st.sampled_from(["1", "60", "D", "1W", "1m"]), TEXT, JSON_VALUES),
            "strategy": st.one_of(st.just("tradingview"), TEXT, JSON_VALUES),
            "bar_time": BAR_TIMES,
            "indicators": st.one_of(st.dictionaries(TEXT, st.one_of(NUMERIC_TEXT, PRICES), max_size=3), JSON_VALUES),
            "id": st.one_of(TEXT, JSON_VALUES),
            "source": st.one_of(TEXT, JSON_VALUES),
            "reason": st.one_of(TEXT, JSON_VALUES),
        },
    ),
)
# Mostly valid, so that accepted signals are checked against the contract too.
PLAUSIBLE_OUTSIDE_SIGNALS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["buy", "sell", "BUY", "Sell"]),
        "price": st.one_of(VALID_PRICES, VALID_PRICES.map(str), st.from_regex(NUMBER_RE, fullmatch=True)),
    },
    optional={
        "symbol": st.sampled_from(["BTCUSDT", "ethusdt", "BINANCE:BTCUSDT.P", "BTC/USDT:USDT"]),
        "timeframe": st.sampled_from(["1", "60", "D", "1W", "1m"]),
        "strategy": st.sampled_from(["tradingview", "my bot"]),
        "bar_time": st.datetimes(timezones=ZONES).map(lambda moment: moment.isoformat()),
        "indicators": st.dictionaries(TEXT, st.one_of(VALID_PRICES, VALID_PRICES.map(str)), max_size=3),
        "reason": TEXT,
        "id": st.sampled_from(["a", "b", "c"]),
    },
)
BODIES = st.one_of(
    st.builds(json_text, PLAUSIBLE_OUTSIDE_SIGNALS, st.booleans()),
    st.builds(json_text, OUTSIDE_SIGNALS, st.booleans()),
    MESSAGES,
)


def test_no_body_gets_a_5xx_and_every_accepted_signal_keeps_the_contract(make_client):
    # One address and one token sending hundreds of requests: the limits have their own tests.
    client = make_client(
        SIGNALS_PUBLISH_TOKEN=TOKEN, PUBLISH_RATE_LIMIT="1000000/minute", HTTP_RATE_LIMIT="1000000/second"
    )

    @given(BODIES, st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
    @example(TRADINGVIEW.encode(), "text/plain")
    @example(b'{"type": "buy", "price": "1e-400"}', "text/plain")
    @example(b'{"type": "buy", "price": 1, "bar_time": "0001-01-01T00:30:00+01:00"}', "application/json")
    def check(body: bytes, content_type: str):
        answer = post(client, body, content_type=content_type)

        assert answer.status_code in (200, 201, 400, 413), (answer.status_code, answer.content[:300])
        if answer.status_code == 413:  # refused unread by the transport (connection_limits.py), in plain text
            return
        assert answer.headers["Content-Type"] == "application/json"
        if answer.status_code in (200, 201):
            signal = answer.json()
            assert_contract(signal)
            assert signal["type"] in ("BUY", "SELL") and isinstance(signal["seq"], int)
            assert signal.get("bar_time") is None or signal["bar_time"].endswith("Z")
        else:
            assert isinstance(answer.json()["error"], str)

    check()


SECRET = "tv-secret-5d1e9a"  # distinctive, so finding it in the log means the log holds it


def test_a_tradingview_webhook_reaches_a_socketio_client_and_no_log_holds_the_token(start_web, connect, redis_client):
    web = start_web(SIGNALS_PUBLISH_TOKEN=SECRET)
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")

    refused = requests.post(f"{web.url}/api/signals?token=wrong-{SECRET}", data=TRADINGVIEW, timeout=5)
    answer = requests.post(
        f"{web.url}/api/signals?token={SECRET}",
        data=TRADINGVIEW,
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=5,
    )

    assert refused.status_code == 401
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    (delivered,) = client.wait_signals(1)
    assert delivered == stored and delivered["seq"] == 1 and delivered["type"] == "BUY"
    assert requests.get(web.url + "/api/signals", timeout=5).json()["signals"] == [stored]
    wait_until(lambda: "HTTP intake: new seq 1" in web.log(), message="the intake's log line")
    assert SECRET not in web.log()
    assert not [key for key in redis_client.keys("*") if SECRET in key]
