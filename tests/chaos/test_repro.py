"""Minimal reproductions of the product bugs the chaos scenarios found; each fails until its fix is in."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from backend.signal_schema import EPOCH_KEY
from harness.exchange import ExchangeServer
from harness.polling import wait_until
from harness.processes import ROOT
from harness.redis import make_publisher
from tasks.market import MarketDataError
from tasks.market.exchange import CcxtSource
from tasks.scanner import MarketScanner
from tasks.strategies import parse_strategies
from tests.chaos.clients import PythonPool
from tests.chaos.exchange import STRATEGY, ConsistentExchange


def test_forged_seq_on_the_channel_does_not_silence_the_relay(stack_factory):
    """Scenario 6a: one PUBLISH with a made-up seq in the current epoch stops the relay for good."""
    stack = stack_factory(webs=1, workers=0, beats=0)
    publisher = make_publisher(stack.client())
    pool = PythonPool([stack.webs[0].url], 1)
    try:
        pool.wait_welcomed()
        first = publisher.publish_signal({"type": "BUY", "price": 1, "id": "real-1"})
        forged = {"type": "SELL", "price": 2, "seq": first["seq"] + 1000, "epoch": stack.client().get(EPOCH_KEY)}
        stack.client().publish("quantum_signals", json.dumps(forged))
        second = publisher.publish_signal({"type": "BUY", "price": 3, "id": "real-2"})
        # One relay delivers in order: a relayed forgery would sit before the second real signal.
        wait_until(lambda: len(pool.clients[0].received) >= 2, 10, message="two signals")
        assert pool.clients[0].received == [(first["epoch"], first["seq"]), (second["epoch"], second["seq"])]
    finally:
        pool.stop()


def test_the_bar_of_a_lost_scan_is_published_by_the_next_scan(publisher):
    """Scenario 3: the scan of bar N dies with its worker; the next scan only looks at bar N+1, so N is lost."""
    with ConsistentExchange() as exchange:
        exchange.control({"zigzag": ["BTCUSDT"]})  # every 1 s bar is a cross
        scanner = MarketScanner(CcxtSource("binance", exchange.url), parse_strategies(STRATEGY), publisher, "1s")
        now = 1_800_000_000_500
        for at in (now, now + 2000):  # the scan at now + 1000 never completed
            exchange.now_ms = at
            scanner.scan(["BTCUSDT"], now_ms=at)
    bars = sorted(
        int(json.loads(fields["sig"])["id"].split(":")[-2]) for _, fields in publisher.client.xrange("qs:history")
    )
    assert bars == [1_799_999_999_000, 1_800_000_000_000, 1_800_000_001_000]


def test_a_killed_scans_lock_frees_within_seconds(base_env, redis_client):
    """Scenario 3: a worker SIGKILLed mid-scan leaves qs:scan-lock for max(5, 2 x SCAN_INTERVAL) s: no scans."""
    with ExchangeServer(latency_s=10) as exchange:  # the scan waits at the exchange
        env = {
            **base_env,
            "MARKET_SOURCE": "binance",
            "BINANCE_API_URL": exchange.url,
            "SCAN_INTERVAL": "60",
            "SYMBOLS": "BTCUSDT",
        }
        scan = subprocess.Popen(
            [sys.executable, "-c", "from tasks.scan import scan_market; scan_market()"],
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: exchange.request_count("BTCUSDT"), 30, 0.05, "the scan at the exchange")
        finally:
            os.killpg(scan.pid, signal.SIGKILL)
            scan.wait()
    assert 0 < redis_client.pttl("qs:scan-lock") <= 5000


def test_stale_klines_are_refused():
    """Scenario 5: an exchange whose newest bar is 10 minutes old yields a signal for that old bar."""
    with ExchangeServer() as exchange:
        exchange.now_ms = int(time.time() * 1000) - 600_000
        with pytest.raises(MarketDataError, match="stale"):
            CcxtSource("binance", exchange.url).fetch("BTCUSDT", "1m", 5)


@pytest.mark.parametrize(
    "kind, name, value",
    [
        ("web", "PORT", "abc"),
        ("worker", "REDIS_URL", "rediss://127.0.0.1:1/0?ssl_cert_reqs=bogus"),
        ("worker", "STRATEGIES", "bogus"),
    ],
)
def test_a_bad_setting_exits_with_one_line_naming_it(kind, name, value, base_env):
    """Scenario 6d: the web prints a traceback; a bad ssl_cert_reqs is a ValueError; STRATEGIES goes unnamed."""
    args = [sys.executable, "asgi.py"] if kind == "web" else [sys.executable, "-m", "celery", "-A", "tasks", "worker"]
    done = subprocess.run(args, env={**base_env, name: value}, cwd=ROOT, capture_output=True, text=True, timeout=30)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output and name in output.strip().splitlines()[-1], output[-800:]


def test_a_cursor_beyond_any_stream_id_is_a_bad_request(shared_stack):
    """Scenario 6c: since > 2**64-1 reaches Redis, which refuses the stream id: 503 "Redis unavailable"."""
    answer = requests.get(shared_stack.webs[0].url + f"/api/signals?since={2**64}", timeout=5)
    assert answer.status_code == 400, answer.text
