"""GET /api/candles, /api/stats, /api/outcomes (starlette's TestClient) and the `signal_outcome` event (a live server in
this process), on what a real scan kept."""

import json

import httpx
import numpy as np
import pytest
import talib
from prometheus_client import REGISTRY

from backend import history
from backend.signal_schema import outcome_key
from harness.bars import open_ms, replay, scan, wave_closes, write_bars_csv
from harness.polling import wait_until

SPECS = "sma_cross:fast=3,slow=5;rsi:period=14,lower=30,upper=70"
SMA = "sma_cross:fast=3,slow=5"
RSI = "rsi:period=14,lower=30,upper=70"


def dropped(url: str) -> float:
    """qs_malformed_dropped_total as /metrics of the server at URL shows it."""
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("qs_malformed_dropped_total "):
            return float(line.split()[1])
    raise AssertionError("qs_malformed_dropped_total missing from /metrics")


@pytest.fixture
def replayed(tmp_path, publisher, redis_client):
    """A 400-bar CSV replayed to its end through the scanner and the keeper; its closes."""
    closes = wave_closes(30, 370)
    replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, SPECS)
    return closes


def test_candles_and_series_equal_talib_over_the_served_bars(client, replayed):
    body = client.get("/api/candles?symbol=BTCUSDT&timeframe=1m&limit=1000").json()

    close = np.array([c["close"] for c in body["candles"]])
    assert close.tolist() == replayed and [c["time"] for c in body["candles"]][:2] == [open_ms(0), open_ms(1)]
    assert set(body["candles"][0]) == {"time", "open", "high", "low", "close", "volume"}
    series = {name: np.array(values, dtype=float) for name, values in body["indicators"][SMA].items()}
    # A window of the same bars: equal to rounding (summation order differs until the strategies call TA-Lib).
    np.testing.assert_allclose(series["sma_fast"], talib.SMA(close, 3), rtol=1e-14)
    np.testing.assert_allclose(series["sma_slow"], talib.SMA(close, 5), rtol=1e-14)
    rsi = np.array(body["indicators"][RSI]["rsi"], dtype=float)
    expected = talib.RSI(close, 14)
    # Each bar's value is the one the strategy saw at its close, over the scan's window ending there: Wilder's
    # smoothing forgets where a window began to within the 1e-9 the strategies settle to.
    np.testing.assert_allclose(rsi[14:], expected[14:], rtol=1e-8)
    assert np.isnan(rsi[:14]).all()
    assert body["panes"] == {SMA: {"sma_fast": "price", "sma_slow": "price"}, RSI: {"rsi": "RSI(14)"}}


def test_candles_default_to_the_latest_300_and_honour_limit(client, replayed):
    default = client.get("/api/candles?symbol=BTCUSDT&timeframe=1m").json()
    five = client.get("/api/candles?symbol=btcusdt&timeframe=1m&limit=5").json()

    assert [c["close"] for c in default["candles"]] == replayed[-300:]
    assert [c["time"] for c in five["candles"]] == [open_ms(i) for i in range(395, 400)]
    assert len(five["indicators"][RSI]["rsi"]) == 5 and five["symbol"] == "BTCUSDT" and five["timeframe"] == "1m"


def test_candles_answer_304_until_a_new_bar_closes(tmp_path, client, publisher, redis_client):
    path = write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 30))
    scanner = replay(path, publisher, redis_client, SMA, scans=3)
    first = client.get("/api/candles?symbol=BTCUSDT&timeframe=1m")
    tag = first.headers["ETag"]

    again = client.get("/api/candles?symbol=BTCUSDT&timeframe=1m", headers={"If-None-Match": tag})
    other_limit = client.get("/api/candles?symbol=BTCUSDT&timeframe=1m&limit=7", headers={"If-None-Match": tag})
    scan(scanner)
    after_bar = client.get("/api/candles?symbol=BTCUSDT&timeframe=1m", headers={"If-None-Match": tag})

    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
    assert other_limit.status_code == 200
    assert after_bar.status_code == 200 and after_bar.headers["ETag"] != tag
    assert len(after_bar.json()["candles"]) == len(first.json()["candles"]) + 1


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("timeframe=1m", 400, "symbol is required"),
        ("symbol=BTCUSDT", 400, "timeframe is required"),
        ("symbol=BTC USDT&timeframe=1m", 400, "is not a symbol"),
        ("symbol=BTCUSDT&timeframe=1minute", 400, "is not a timeframe"),
        ("symbol=BTCUSDT&timeframe=1m&limit=0", 400, "limit=0 is out of range"),
        ("symbol=BTCUSDT&timeframe=1m&limit=1001", 400, "limit=1001 is out of range"),
        ("symbol=BTCUSDT&timeframe=1m&limit=ten", 400, "limit='ten' is not an integer"),
        ("symbol=ETHUSDT&timeframe=1m", 404, "the scan does not cover it"),
        ("symbol=BTCUSDT&timeframe=1h", 404, "the scan does not cover it"),
    ],
)
def test_bad_candle_requests_get_the_reason(client, replayed, query, status, reason):
    response = client.get("/api/candles?" + query)

    assert response.status_code == status and reason in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/api/stats?symbol=%00", "is not a symbol"),
        ("/api/stats?strategy=" + "x" * 600, "longer than 512"),
        ("/api/outcomes?limit=1001", "out of range"),
        ("/api/outcomes?symbol=a b", "is not a symbol"),
    ],
)
def test_bad_stats_and_outcome_requests_get_400_with_the_reason(client, path, reason):
    response = client.get(path)

    assert response.status_code == 400 and reason in response.json()["error"]


def test_stats_name_the_epoch_and_filter_by_strategy_and_symbol(client, replayed, redis_client):
    signals = history.read_range(redis_client, 0)

    everything = client.get("/api/stats").json()
    one = client.get("/api/stats?strategy=" + SMA).json()
    per_symbol = client.get("/api/stats?strategy=" + SMA + "&symbol=BTCUSDT").json()
    unknown = client.get("/api/stats?symbol=ETHUSDT").json()

    assert everything["epoch"] == signals[0]["epoch"] and everything["horizons"] == [1, 5, 20]
    assert [e["strategy"] for e in everything["stats"]] == sorted({s["strategy"] for s in signals})
    assert one["stats"] == [e for e in everything["stats"] if e["strategy"] == SMA]
    assert one["stats"][0]["signals"] == sum(s["strategy"] == SMA for s in signals)
    assert per_symbol["stats"] == [
        {"strategy": SMA, "symbol": "BTCUSDT", **{k: v for k, v in one["stats"][0].items() if k != "strategy"}}
    ]
    assert unknown["stats"] == []


def test_outcomes_list_every_stored_outcome_of_the_latest_signals(client, replayed, redis_client):
    signals = history.read_range(redis_client, 0)[-4:]

    body = client.get("/api/outcomes?symbol=BTCUSDT&limit=4").json()

    expected = []
    for signal in signals:
        stored = redis_client.hgetall(outcome_key(signal["epoch"], signal["seq"]))
        for h in (1, 5, 20):
            if str(h) in stored:
                expected.append(
                    {
                        "epoch": signal["epoch"],
                        "seq": signal["seq"],
                        "id": signal["id"],
                        "h": h,
                        "r": float(stored[str(h)]),
                    }
                )
    assert body["outcomes"] == expected and expected
    assert client.get("/api/outcomes?symbol=ETHUSDT").json()["outcomes"] == []


def test_reads_need_a_token_when_signals_auth_token_is_set(make_client):
    client = make_client(SIGNALS_AUTH_TOKEN="s3cret")

    refused = client.get("/api/stats")
    allowed = client.get("/api/stats", headers={"Authorization": "Bearer s3cret"})

    assert refused.status_code == 401 and allowed.status_code == 200


def test_signal_outcome_reaches_the_rooms_of_its_symbol_only(tmp_path, sio_client, publisher, redis_client):
    path = write_bars_csv(tmp_path / "bars.csv", wave_closes(20, 60))
    scanner = replay(path, publisher, redis_client, SMA, scans=2)
    btc = sio_client(auth={"symbols": ["BTCUSDT"]})
    eth = sio_client(auth={"symbols": ["ETHUSDT"]})
    everyone = sio_client()
    for socket in (btc, eth, everyone):
        socket.wait_for("welcome")

    sent_before = REGISTRY.get_sample_value("qs_broadcast_deliveries_total", {"path": "sent"}) or 0.0
    for _ in range(40):
        scan(scanner)

    wait_until(lambda: len(btc.of("signal_outcome")) >= 3, message="outcomes for the BTCUSDT client")
    seen = btc.of("signal_outcome")
    # Outcomes take the broadcast path of signals (framed once, written to idle websockets), after their signal.
    sent = (REGISTRY.get_sample_value("qs_broadcast_deliveries_total", {"path": "sent"}) or 0.0) - sent_before
    assert sent >= len(btc.signals()) + len(seen), sent
    order = [(name, data["seq"]) for name, data in btc.events if name in ("new_signal", "signal_outcome")]
    live = [outcome for outcome in seen if ("new_signal", outcome["seq"]) in order]  # signals made after it joined
    assert live, (order, seen)
    for outcome in live:
        assert order.index(("new_signal", outcome["seq"])) < order.index(("signal_outcome", outcome["seq"]))
    first = seen[0]
    stored = redis_client.hgetall(outcome_key(first["epoch"], first["seq"]))
    assert set(first) == {"epoch", "seq", "id", "h", "r"} and first["r"] == float(stored[str(first["h"])])
    assert first["id"] == stored["id"]
    wait_until(lambda: len(everyone.of("signal_outcome")) >= len(seen), message="outcomes for the all-symbols client")
    # A marker signal of ETHUSDT proves the ETHUSDT client is live: it got that, and no outcome of BTCUSDT.
    publisher.publish_signal({"type": "BUY", "price": 1.0, "symbol": "ETHUSDT", "id": "marker"})
    wait_until(lambda: eth.signals(), message="the ETHUSDT marker")
    assert eth.of("signal_outcome") == []


def test_junk_and_forged_outcome_announcements_are_dropped_and_counted(
    sio_client, live_server, publisher, redis_client
):
    socket = sio_client()
    url = live_server().url
    socket.wait_for("welcome")
    channel = "quantum_signals:outcomes"
    epoch = history.ensure_epoch(redis_client)
    before = dropped(url)
    junk = [
        b"not json",
        b"[]",
        b"{}",
        b"\xff\xfe",
        json.dumps({"epoch": epoch, "seq": 0, "h": 1}).encode(),
        b"{" * 5000,
    ]
    forged = json.dumps({"epoch": epoch, "seq": 99, "h": 1, "r": 1e9})  # names no stored outcome

    for raw in [*junk, forged.encode(), json.dumps({"epoch": "old", "seq": 1, "h": 1}).encode()]:
        redis_client.publish(channel, raw)
    marker = publisher.publish_signal({"type": "BUY", "price": 2.0, "id": "after-junk"})

    assert socket.wait_for("new_signal")[-1] == marker
    wait_until(lambda: dropped(url) - before >= len(junk) + 2, message="all counted")
    assert socket.of("signal_outcome") == []
