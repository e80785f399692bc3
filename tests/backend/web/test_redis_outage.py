"""The web process across Redis failures: a test-owned redis-server is killed, restarted, its clients cut."""

import pytest
import requests

from backend.embedded_redis import EmbeddedRedis
from backend.publisher import Publisher
from backend.redis_client import make_redis
from harness.polling import wait_until
from harness.processes import WebServer


@pytest.fixture
def own_redis():
    """A redis-server only this test uses, so it may be stopped."""
    server = EmbeddedRedis().start()
    yield server
    server.cleanup()


@pytest.fixture
def outage_web(own_redis, base_env, tmp_path):
    """A web process on the test's own Redis."""
    server = WebServer({**base_env, "REDIS_URL": own_redis.url}, tmp_path).start()
    yield server
    server.stop()


def status(web) -> int:
    return requests.get(web.url + "/readyz", timeout=5).status_code


def test_redis_restart_readyz_resubscribe_and_resync(own_redis, outage_web, connect):
    client = connect(outage_web.url)
    wait_until(lambda: client.of("welcome"))
    publisher = Publisher(make_redis(own_redis.url), "quantum_signals", 1000, 65536)
    before = publisher.publish_signal({"type": "BUY", "price": 1, "id": "before"})
    client.wait_signals(1)

    own_redis.kill()
    wait_until(lambda: status(outage_web) == 503, 15, message="readyz 503 during the outage")
    assert "Redis unavailable" in requests.get(outage_web.url + "/readyz").json()["reason"]
    assert requests.get(outage_web.url + "/healthz").status_code == 200
    own_redis.start()
    wait_until(lambda: status(outage_web) == 200, 20, message="readyz 200 after the restart")
    after = publisher.publish_signal({"type": "SELL", "price": 2, "id": "after"})

    received = client.wait_signals(2, timeout=15)
    assert after["epoch"] != before["epoch"]
    assert client.of("resync") == [{"epoch": after["epoch"]}]
    assert [(s["epoch"], s["seq"]) for s in received] == [(before["epoch"], 1), (after["epoch"], 1)]


def test_dropped_subscription_catches_up_from_history(own_redis, outage_web, connect):
    client = connect(outage_web.url)
    wait_until(lambda: client.of("welcome"))
    redis_client = make_redis(own_redis.url)
    publisher = Publisher(redis_client, "quantum_signals", 1000, 65536)

    redis_client.client_kill_filter(_type="pubsub")
    sent = [publisher.publish_signal({"type": "BUY", "price": 1 + i, "id": f"gap{i}"}) for i in range(50)]

    received = client.wait_signals(50, timeout=15)
    wait_until(lambda: "qs_relay_reconnects_total 1.0" in requests.get(outage_web.url + "/metrics").text)
    assert [s["seq"] for s in received] == [s["seq"] for s in sent]


def test_web_starts_before_redis_and_waits(base_env, tmp_path, connect):
    pending = EmbeddedRedis()
    web = WebServer({**base_env, "REDIS_URL": pending.url}, tmp_path).start(wait=False)
    try:
        wait_until(lambda: _answers(web, "/healthz"), 20, message="healthz while Redis is absent")
        assert status(web) == 503
        pending.start()
        wait_until(lambda: status(web) == 200, 20, message="ready once Redis appears")
        client = connect(web.url)
        Publisher(make_redis(pending.url), "quantum_signals", 1000, 65536).publish_signal({"type": "BUY", "price": 3})
        assert client.wait_signals(1)[0]["price"] == 3
    finally:
        web.stop()
        pending.cleanup()


def _answers(web, path) -> bool:
    try:
        return requests.get(web.url + path, timeout=1).status_code == 200
    except requests.RequestException:
        return False
