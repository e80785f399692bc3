"""The market scan through real Celery workers and beats, to a real Socket.IO client."""

import re
import time

import pytest
import requests
from celery import Celery

from backend import history
from backend.embedded_redis import EmbeddedRedis
from backend.redis_client import make_redis
from harness.clients import RecordingClient
from harness.exchange import CROSS_UP, ExchangeServer
from harness.polling import wait_until
from harness.processes import WebServer


@pytest.fixture
def exchange():
    """A loopback exchange whose last closed bar carries an SMA(3)/SMA(5) cross up."""
    with ExchangeServer() as server:
        server.set_series("BTCUSDT", CROSS_UP)
        server.set_series("ETHUSDT", CROSS_UP)
        yield server


@pytest.fixture
def scan_env(exchange):
    """Settings of a worker scanning the loopback exchange every second."""
    return {
        "MARKET_SOURCE": "binance",
        "BINANCE_API_URL": exchange.url,
        "SCAN_INTERVAL": "1",
        "SYMBOLS": "BTCUSDT,ETHUSDT",
        "STRATEGIES": "sma_cross:fast=3,slow=5",
        "TIMEFRAME": "1m",
    }


# SMA(3) a hair below SMA(5) on the last closed bar; only the still-open bar (last * 1.01) would cross.
OPEN_BAR_ONLY = [100.0] * 30 + [99.99] * 3


@pytest.fixture
def ccxt_env(exchange):
    """ccxt's binance pointed at the loopback exchange (on the wall clock: each minute's last closed bar crosses)."""
    exchange.set_series("ETHUSDT", OPEN_BAR_ONLY)
    return {
        "MARKET_SOURCE": "ccxt:binance",
        "EXCHANGE_API_URL": exchange.url,
        "SCAN_INTERVAL": "1",
        "SYMBOLS": "BTC/USDT,ETHUSDT",
        "STRATEGIES": "sma_cross:fast=3,slow=5",
        "TIMEFRAME": "1m,1h",
    }


def send_scan(redis_url: str, symbols: list[str]):
    """Queue one scan_symbols task as another process would."""
    app = Celery(broker=redis_url)
    try:
        return app.send_task("tasks.scan.scan_symbols", args=[symbols])
    finally:
        app.close()


def test_worker_and_beat_deliver_a_signal_end_to_end(web, connect, start_celery, scan_env):
    client = connect(web.url)
    start_celery("worker", **scan_env)
    start_celery("beat", **scan_env)

    signals = client.wait_signals(2, timeout=30)

    assert {s["symbol"] for s in signals} == {"BTCUSDT", "ETHUSDT"}
    assert all(s["source"] == "binance" and s["price"] == 200.0 and s["type"] == "BUY" for s in signals)
    age = wait_until(lambda: requests.get(web.url + "/readyz").json()["last_scan_age_s"], message="a scan on /readyz")
    assert 0 < age < 30


def test_two_workers_never_publish_the_same_bar_twice(redis_url, redis_client, start_celery, scan_env):
    for _ in range(2):
        start_celery("worker", **scan_env)

    for _ in range(10):
        send_scan(redis_url, ["BTCUSDT", "ETHUSDT"])

    wait_until(lambda: len(history.read_range(redis_client, 0)) >= 2, 30, message="signals published")
    wait_until(lambda: int(redis_client.llen("celery") or 0) == 0, 30, message="queue drained")
    ids = [s["id"] for s in history.read_range(redis_client, 0)]
    assert len(ids) == len(set(ids))


def test_two_beats_schedule_once(redis_client, start_celery, scan_env):
    start_celery("worker", **scan_env)
    beats = [start_celery("beat", **scan_env) for _ in range(2)]

    wait_until(
        lambda: sum(b.log().count("Sending due task") for b in beats) >= 4, 60, 0.2, message="four scheduled scans"
    )

    sending = [b for b in beats if "Sending due task" in b.log()]
    assert len(sending) == 1, [b.log()[-2000:] for b in beats]


def test_redis_restart_during_a_scan_the_publish_is_retried(base_env, tmp_path, start_celery, scan_env, exchange):
    own = EmbeddedRedis().start()
    web = WebServer({**base_env, "REDIS_URL": own.url}, tmp_path, name="web-own").start()
    try:
        worker = start_celery("worker", **scan_env, REDIS_URL=own.url)
        client = RecordingClient(web.url)
        exchange.latency_s = 1.0
        # The exchange answers on the wall clock, 1 s late: a minute turning meanwhile moves its last closed bar
        # (the cross) past the scan's own clock, and the scan finds nothing to publish. Start well inside a minute.
        wait_until(lambda: time.time() % 60 < 50, 15, 0.1, "a minute with time left for the scan")
        send_scan(own.url, ["BTCUSDT"])
        wait_until(lambda: exchange.request_count("BTCUSDT") >= 1, 20, message="scan in flight")

        own.kill()
        wait_until(lambda: re.search(r"publish of \S+ failed", worker.log()), 20, message="a failed publish")
        own.start()

        signal = client.wait_signals(1, timeout=30)[0]
        stored = history.read_range(make_redis(own.url), 0)
        assert signal["symbol"] == "BTCUSDT" and [s["id"] for s in stored] == [signal["id"]]
        client.close()
    finally:
        web.stop()
        own.cleanup()


def test_worker_and_beat_start_before_redis_and_survive_its_restart(start_celery, scan_env):
    from backend.signal_schema import LAST_SCAN_KEY

    own = EmbeddedRedis()
    try:
        processes = [start_celery(kind, wait=False, **scan_env, REDIS_URL=own.url) for kind in ("worker", "beat")]
        own.start()
        client = make_redis(own.url)
        wait_until(lambda: client.get(LAST_SCAN_KEY), 60, 0.1, message="a scan once Redis appears")

        own.kill()
        own.start()
        client = make_redis(own.url)
        wait_until(lambda: client.get(LAST_SCAN_KEY), 60, 0.1, message="a scan after the restart")

        assert [p.process.poll() for p in processes] == [None, None]
        assert len(history.read_range(client, 0)) >= 1
    finally:
        own.cleanup()


def test_ccxt_binance_through_worker_and_beat_publishes_the_one_cross_and_nothing_from_the_open_bar(
    redis_client, start_celery, ccxt_env, exchange
):
    worker = start_celery("worker", **ccxt_env)
    start_celery("beat", **ccxt_env)

    wait_until(lambda: len(history.read_range(redis_client, 0)) >= 2, 30, message="the 1m and 1h signals")
    scans = worker.log().count("scanned 2 symbols")
    wait_until(lambda: worker.log().count("scanned 2 symbols") >= scans + 3, 30, message="three more scans")

    # One signal per bar that crossed (a minute boundary met during the test makes a new bar cross), none for ETH.
    signals = history.read_range(redis_client, 0)
    assert {(s["symbol"], s["type"], s["price"], s["source"]) for s in signals} == {
        ("BTC/USDT", "BUY", 200.0, "binance")
    }
    assert len({s["id"] for s in signals}) == len(signals) and {s["timeframe"] for s in signals} == {"1m", "1h"}
    assert [s["timeframe"] for s in signals].count("1h") == 1
    assert set(exchange.paths) == {"/api/v3/exchangeInfo", "/api/v3/klines"}
    assert exchange.paths["/api/v3/exchangeInfo"] == 1  # markets loaded once, in the worker before it forked


@pytest.mark.parametrize(
    "env, words",
    [
        ({"SYMBOLS": "BTCUSD"}, "binance lists no market 'BTCUSD' (types spot); did you mean 'BTCUSDT'"),
        ({"TIMEFRAME": "1m,10s"}, "timeframe '10s' is not offered by binance"),
        ({"MARKET_SOURCE": "ccxt:binanse"}, "ccxt has no exchange 'binanse'; did you mean 'binance'"),
    ],
)
def test_an_unknown_symbol_timeframe_or_exchange_stops_the_worker_at_start(start_celery, ccxt_env, env, words):
    worker = start_celery("worker", wait=False, **{**ccxt_env, **env})

    wait_until(lambda: worker.process.poll() is not None, 30, message="the worker exits")

    assert worker.process.returncode != 0
    assert "configuration error: MARKET_SOURCE=ccxt:" in worker.log() and words in worker.log()
