"""The market scan through real Celery workers and beats, to a real Socket.IO client."""

import re

import pytest
import requests
from celery import Celery

from backend import history
from backend.embedded_redis import EmbeddedRedis
from backend.redis_client import make_redis
from tests.harness.clients import RecordingClient
from tests.harness.exchange import CROSS_UP, ExchangeServer
from tests.harness.polling import wait_until
from tests.harness.processes import WebServer


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
