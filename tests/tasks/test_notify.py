"""Notifications through a real Celery worker and beat to real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from backend import destinations
from backend.signal_schema import EPOCH_KEY, HISTORY_KEY, NOTIFY_GROUP, NOTIFY_QUEUE
from harness.polling import wait_until
from harness.processes import ROOT
from harness.receiver import Receiver

SECRET = "test-webhook-secret-0123456789"


def make_signal(n: int, symbol: str = "BTCUSDT", kind: str = "BUY", strategy: str = "sma_cross:fast=9,slow=21"):
    """A scan-like signal, unique by N."""
    return {
        "id": f"test:{symbol}:{strategy}:{n}:{kind}",
        "type": kind,
        "price": 60000.5 + n,
        "symbol": symbol,
        "timeframe": "1m",
        "strategy": strategy,
        "bar_time": "2026-11-25T16:42:00Z",
        "source": "test",
        "reason": "SMA(9) crossed above SMA(21)",
    }


@pytest.fixture
def receiver():
    """A recording HTTP receiver."""
    with Receiver() as server:
        yield server


@pytest.fixture
def notify_stack(start_celery):
    """Factory: a worker (both queues, as the Procfile runs it) and a beat with the notification settings ENV."""

    def start(**env):
        env = {"NOTIFY_WEBHOOK_SECRET": SECRET, **env}
        worker = start_celery("worker", **env)
        start_celery("beat", **env)
        return worker

    return start


def settled(redis_client) -> bool:
    """True when the dispatcher has read and acked everything and no delivery waits in the queue."""
    info = {g["name"]: g for g in redis_client.xinfo_groups(HISTORY_KEY)}.get(NOTIFY_GROUP)
    last = redis_client.xinfo_stream(HISTORY_KEY)["last-generated-id"]
    return bool(
        info and info["pending"] == 0 and info["last-delivered-id"] == last and not redis_client.llen(NOTIFY_QUEUE)
    )


def check_signed(request, body: bytes) -> None:
    """The receiver's side of the contract: recompute the HMAC of `<t>.<body>` and compare."""
    fields = dict(item.split("=", 1) for item in request.headers["Quantum-Signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    assert abs(time.time() - int(fields["t"])) < 60


def quantum_signals(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`quantum-signals ARGS…` (the venv's console command) as an operator runs it, from the project's directory."""
    command = Path(sys.executable).parent / "quantum-signals"
    return subprocess.run([command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_webhook_gets_each_signal_once_signed_in_order(notify_stack, publisher, redis_client, receiver):
    notify_stack(NOTIFY_URLS=receiver.url("/hook"))

    published = [publisher.publish_signal(make_signal(n)) for n in range(5)]

    wait_until(lambda: len(receiver.received()) >= 5, 30, message="five webhooks")
    wait_until(lambda: settled(redis_client), 10, message="the dispatcher settled")
    got = receiver.received()
    stored = [fields["sig"].encode() for _id, fields in redis_client.xrange(HISTORY_KEY)]
    assert [r.body for r in got] == stored  # once each, in seq order, the bytes kept in history
    for request, signal in zip(got, published):
        check_signed(request, request.body)
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Idempotency-Key"] == f"{signal['epoch']}:{signal['seq']}"


def test_no_signal_is_missed_while_no_worker_runs_nor_across_an_epoch_reset(
    notify_stack, publisher, redis_client, receiver
):
    before = [publisher.publish_signal(make_signal(n)) for n in range(2)]  # no worker, no dispatcher yet
    notify_stack(NOTIFY_URLS=receiver.url("/hook"))
    wait_until(lambda: len(receiver.received()) == 2, 30, message="the backlog")

    redis_client.delete(EPOCH_KEY)  # Redis lost its data: the next publish starts a new epoch and history
    after = publisher.publish_signal(make_signal(3))

    wait_until(lambda: len(receiver.received()) == 3, 15, message="the first signal of the new epoch")
    keys = [r.headers["Idempotency-Key"] for r in receiver.received()]
    assert keys == [f"{s['epoch']}:{s['seq']}" for s in [*before, after]]
    assert after["seq"] == 1 and after["epoch"] != before[0]["epoch"]


def test_an_entry_read_by_a_dispatcher_that_died_is_delivered(notify_stack, publisher, redis_client, receiver):
    lost = publisher.publish_signal(make_signal(1))
    # A dispatcher read the entry and died before queueing its deliveries: it stays pending in the group. Its
    # idle time is set past the reclaim threshold (XCLAIM … IDLE), as if 20 s had gone by: a run cut short by a
    # Redis restart is taken up within seconds, not minutes (chaos row 12f).
    redis_client.xreadgroup(NOTIFY_GROUP, "crashed", {HISTORY_KEY: ">"}, count=1)
    redis_client.xclaim(HISTORY_KEY, NOTIFY_GROUP, "crashed", 0, [f"{lost['seq']}-0"], idle=20_000)
    notify_stack(NOTIFY_URLS=receiver.url("/hook"))
    later = publisher.publish_signal(make_signal(2))

    wait_until(lambda: len(receiver.received()) >= 2, 30, message="both signals")
    wait_until(lambda: settled(redis_client), 10, message="the dispatcher settled")
    keys = sorted(r.headers["Idempotency-Key"] for r in receiver.received())
    assert keys == sorted(f"{s['epoch']}:{s['seq']}" for s in (lost, later))


def test_apprise_and_filters_from_the_config_file(notify_stack, publisher, redis_client, receiver, tmp_path):
    config = tmp_path / "destinations.toml"
    config.write_text(
        f'[[destination]]\nurl = "{receiver.url("/sells")}"\ntypes = ["SELL"]\n\n'
        f'[[destination]]\nurl = "json://127.0.0.1:{receiver.port}/apprise"\n'
        'symbols = ["ETHUSDT"]\nstrategies = ["sma_cross"]\n'
    )
    notify_stack(NOTIFY_CONFIG=str(config))

    publisher.publish_signal(make_signal(1, "BTCUSDT", "BUY"))  # neither
    publisher.publish_signal(make_signal(2, "ETHUSDT", "BUY"))  # apprise
    publisher.publish_signal(make_signal(3, "ETHUSDT", "SELL", "rsi:period=14,lower=30,upper=70"))  # webhook
    publisher.publish_signal(make_signal(4, "BTCUSDT", "SELL"))  # webhook

    wait_until(lambda: len(receiver.received()) >= 3, 30, message="three notifications")
    wait_until(lambda: settled(redis_client), 10, message="the dispatcher settled")
    sells = [json.loads(r.body) for r in receiver.received("/sells")]
    assert [(s["symbol"], s["type"]) for s in sells] == [("ETHUSDT", "SELL"), ("BTCUSDT", "SELL")]
    [apprise] = [json.loads(r.body) for r in receiver.received("/apprise")]
    assert apprise["message"] == "BUY ETHUSDT @ 60002.5 · sma_cross 9/21 · 1m · 16:42 UTC\nSMA(9) crossed above SMA(21)"


def test_retries_backoff_retry_after_and_dead_letters(notify_stack, publisher, redis_client, receiver, base_env):
    receiver.plan("/flaky", [(500, {})] * 3)
    receiver.plan("/busy", [(429, {"Retry-After": "2"})])
    receiver.plan("/broken", [(400, {})])
    notify_stack(NOTIFY_URLS=" ".join(receiver.url(p) for p in ("/flaky", "/busy", "/broken")))

    signal = publisher.publish_signal(make_signal(1))

    wait_until(lambda: [r.status for r in receiver.received("/flaky")] == [500, 500, 500, 200], 30, 0.05, "flaky")
    wait_until(lambda: [r.status for r in receiver.received("/busy")] == [429, 200], 15, message="busy")
    keys = {r.headers["Idempotency-Key"] for r in receiver.received("/flaky") + receiver.received("/busy")}
    assert keys == {f"{signal['epoch']}:{signal['seq']}"}
    first, second = receiver.received("/busy")
    assert second.at - first.at >= 2.0, "Retry-After: 2 not honoured"

    [letter] = wait_until(lambda: destinations.dead_letters(redis_client), 10, message="a dead letter")
    assert [r.status for r in receiver.received("/broken")] == [400]
    listed = quantum_signals("notify", "dead", env=base_env)
    assert listed.returncode == 0, listed.stderr
    assert letter["id"] in listed.stdout and "HTTP 400" in listed.stdout and "/broken" not in listed.stdout

    # The receiver is fixed (its plan is spent: 200 from now on); the operator resends.
    resent = quantum_signals("notify", "resend", letter["id"], env=base_env)
    assert resent.returncode == 0, resent.stderr
    wait_until(lambda: [r.status for r in receiver.received("/broken")] == [400, 200], 15, message="the resend")
    assert receiver.received("/broken")[1].body == receiver.received("/broken")[0].body
    assert destinations.dead_letters(redis_client) == []
    wait_until(lambda: destinations.stats(redis_client).get(("webhook", "sent")) == 3, 5, message="counts")
    assert destinations.stats(redis_client) == {
        ("webhook", "sent"): 3,
        ("webhook", "retried"): 4,
        ("webhook", "dead"): 1,
    }


def test_a_hanging_destination_delays_no_other_from_its_start(notify_stack, publisher, redis_client, receiver):
    receiver.hang("/hang")
    # Two worker processes, as the Procfile's default: the hanging destination may hold at most one, from its
    # first attempt on (before the hang is noticed, too).
    notify_stack(
        NOTIFY_URLS=f"{receiver.url('/hang')} {receiver.url('/fast')}", NOTIFY_TIMEOUT_S="5", WORKER_CONCURRENCY="2"
    )
    # The dispatcher's first run makes the history stream and its group: from then on a signal waits ≤ 1 s for it.
    wait_until(lambda: redis_client.exists(HISTORY_KEY), 20, message="the dispatcher running")

    published = []
    for n in range(8):  # each once the one before reached /fast: the stream runs through the hang's first 5 s
        published.append((time.time(), publisher.publish_signal(make_signal(n))))
        wait_until(lambda: len(receiver.received("/fast")) > n, 20, message=f"fast delivery {n}")
    hang_began = receiver.received("/hang")[0].at
    assert sum(hang_began <= at < hang_began + 5 for at, _ in published) >= 3, "too few signals met the hang"

    fast = {r.headers["Idempotency-Key"]: r.at for r in receiver.received("/fast")}
    latencies = [fast[f"{s['epoch']}:{s['seq']}"] - at for at, s in published]
    assert max(latencies) < 2.5, latencies  # a dispatch tick (≤ 1 s) and a delivery, never the 5 s timeout
    hangs = [r.at for r in receiver.received("/hang")]
    assert all(b - a > 4.5 for a, b in zip(hangs, hangs[1:])), f"two attempts in flight at once: {hangs}"


def test_signals_published_over_http_and_by_the_publisher_both_notify(
    notify_stack, start_web, publisher, redis_client, receiver
):
    web = start_web(SIGNALS_PUBLISH_TOKEN="publish-token")
    notify_stack(NOTIFY_URLS=receiver.url("/hook"))

    answer = requests.post(
        web.url + "/api/signals",
        json={"type": "sell", "price": "61000", "symbol": "ETHUSDT"},
        headers={"Authorization": "Bearer publish-token"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    publisher.publish_signal(make_signal(1))

    wait_until(lambda: len(receiver.received("/hook")) >= 2, 30, message="two webhooks")
    sources = [json.loads(r.body)["source"] for r in receiver.received("/hook")]
    assert sources == ["webhook", "test"]
    line = 'qs_notify_deliveries_total{kind="webhook",outcome="sent"} 2.0'
    wait_until(lambda: line in requests.get(web.url + "/metrics", timeout=5).text, 10, message="counts on /metrics")


def test_a_bad_destination_stops_the_worker_at_start(start_celery):
    worker = start_celery("worker", wait=False, NOTIFY_URLS="nope://secret-token@host json://127.0.0.1:1/x")

    wait_until(lambda: not worker.alive(), 60, 0.1, message="the worker exiting")
    log = worker.log()
    assert "configuration error: NOTIFY_URLS=nope://***: not a URL Apprise can send to" in log
    assert "secret-token" not in log
