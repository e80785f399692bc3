"""The relay end to end: real web processes, real Redis, real Socket.IO clients (Python and Node)."""

import json

import pytest
import requests

from harness.clients import NodeClient
from harness.polling import wait_until
from harness.redis import redis_cli_publish


@pytest.fixture(params=["1", "0"], ids=["fast", "queued"])
def base_env(base_env, request):
    """Every test here runs with the broadcast fast path on and off (FAST_BROADCAST)."""
    return {**base_env, "FAST_BROADCAST": request.param}


def test_redis_cli_publish_reaches_python_client(web, connect, redis_server):
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")

    redis_cli_publish(redis_server, '{"type":"BUY","price":60000}')

    assert client.wait_signals(1) == [{"type": "BUY", "price": 60000}]


def test_redis_cli_publish_reaches_official_js_client(web, redis_server):
    node = NodeClient(web.url, count=1)
    try:
        wait_until(lambda: node.of("welcome"), 20, message="node client welcome")
        redis_cli_publish(redis_server, '{"type":"SELL","price":61000.5,"symbol":"ETHUSDT"}')
        node.finish()
    finally:
        node.stop()

    assert node.of("new_signal") == [{"type": "SELL", "price": 61000.5, "symbol": "ETHUSDT"}]


def test_welcome_gives_the_cursor(web, connect, publisher):
    stored = [publisher.publish_signal({"type": "BUY", "price": 100 + i, "id": f"w{i}"}) for i in range(3)]
    wait_until(lambda: requests.get(web.url + "/readyz").json()["seq"] == 3, message="relay at seq 3")

    client = connect(web.url)
    welcome = wait_until(lambda: client.of("welcome"), message="welcome")[0]

    assert welcome == {"epoch": stored[-1]["epoch"], "seq": 3}


def test_malformed_flood_only_valid_signals_arrive(web, connect, redis_client, publisher):
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"))
    bad = [
        b"not json",
        b"[1,2,3]",
        b'"BUY"',
        b"{}",
        b'{"type":"BUY"}',
        b'{"type":"BUY","price":-5}',
        b'{"type":"BUY","price":0}',
        b'{"type":"BUY","price":NaN}',
        b'{"type":"BUY","price":"60000"}',
        b'{"type":"HOLD","price":1}',
        b'{"type":"BUY","price":Infinity}',
        b"\xff\xfe{bad utf8}",
        b'{"type":"BUY","price":1,"x":"' + b"a" * 1_000_000 + b'"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type":"BUY","price":true}',
        b'{"type":"BUY","price":1,"seq":-3,"epoch":"x"}',
    ]
    expected = []
    for i, payload in enumerate(bad * 3):
        redis_client.publish("quantum_signals", payload)
        if i % 5 == 0:
            expected.append(publisher.publish_signal({"type": "SELL", "price": 1 + i, "id": f"ok{i}"}))

    received = client.wait_signals(len(expected))
    # the last two junk messages follow the last signal: poll for their count too
    wait_until(
        lambda: "qs_malformed_dropped_total 48.0" in requests.get(web.url + "/metrics").text,
        message="48 messages dropped",
    )

    assert [s["seq"] for s in received] == [s["seq"] for s in expected]
    assert requests.get(web.url + "/readyz").status_code == 200


def test_two_web_processes_deliver_each_signal_exactly_once(start_web, connect, publisher):
    servers = [start_web("a"), start_web("b")]
    clients = [connect(s.url) for s in servers for _ in range(3)]
    for client in clients:
        wait_until(lambda: client.of("welcome"))

    sent = [publisher.publish_signal({"type": "BUY", "price": 10 + i, "id": f"two{i}"}) for i in range(20)]

    for client in clients:
        client.wait_signals(20)
    wait_until(lambda: all(len(c.signals()) >= 20 for c in clients))
    # Give any duplicate a chance to show: one more signal must arrive last and alone.
    marker = publisher.publish_signal({"type": "SELL", "price": 1, "id": "marker"})
    for client in clients:
        wait_until(lambda: client.signals()[-1]["seq"] == marker["seq"])
        assert [s["seq"] for s in client.signals()] == [s["seq"] for s in sent] + [marker["seq"]]


def test_recovery_with_since_while_publishing_has_no_gap_or_duplicate(web, connect, publisher):
    first = [publisher.publish_signal({"type": "BUY", "price": 1 + i, "id": f"r{i}"}) for i in range(300)]
    epoch = first[0]["epoch"]
    # A background publisher keeps going while the client replays.
    import threading

    stop = threading.Event()
    published = []

    def keep_publishing():
        i = 0
        while not stop.is_set() and i < 2000:
            published.append(publisher.publish_signal({"type": "SELL", "price": 1 + i, "id": f"live{i}"}))
            i += 1

    thread = threading.Thread(target=keep_publishing)
    thread.start()
    try:
        client = connect(web.url, auth={"since": 50, "epoch": epoch})
        wait_until(lambda: len(client.signals()) >= 400, 20)
    finally:
        stop.set()
        thread.join()
    last = published[-1]["seq"]
    wait_until(lambda: client.signals() and client.signals()[-1]["seq"] == last, 20, message="last live signal")

    seqs = [s["seq"] for s in client.signals()]
    assert seqs == list(range(51, last + 1))


def test_stale_epoch_gets_resync_and_all_history(web, connect, publisher):
    stored = [publisher.publish_signal({"type": "BUY", "price": 1 + i, "id": f"e{i}"}) for i in range(5)]

    client = connect(web.url, auth={"since": 3, "epoch": "some-old-epoch"})
    received = client.wait_signals(5)

    assert client.of("resync") == [{"epoch": stored[0]["epoch"]}]
    assert [s["seq"] for s in received] == [1, 2, 3, 4, 5]


def test_query_parameters_work_like_auth(web, connect, publisher):
    for i in range(4):
        publisher.publish_signal(
            {"type": "BUY", "price": 1 + i, "symbol": "BTCUSDT" if i % 2 else "ETHUSDT", "id": f"q{i}"}
        )

    client = connect(web.url + "?since=0&symbols=BTCUSDT")
    received = client.wait_signals(2)

    assert [s["seq"] for s in received] == [2, 4]


def test_symbol_filter_and_subscribe(web, connect, publisher):
    btc = connect(web.url, auth={"symbols": ["BTCUSDT"]})
    both = connect(web.url)
    for client in (btc, both):
        wait_until(lambda: client.of("welcome"))

    publisher.publish_signal({"type": "BUY", "price": 1, "symbol": "ETHUSDT", "id": "f1"})
    publisher.publish_signal({"type": "BUY", "price": 2, "symbol": "BTCUSDT", "id": "f2"})
    both.wait_signals(2)
    wait_until(lambda: btc.signals())
    answer = btc.sio.call("subscribe", {"symbols": ["ETHUSDT"]}, timeout=5)
    publisher.publish_signal({"type": "SELL", "price": 3, "symbol": "BTCUSDT", "id": "f3"})
    publisher.publish_signal({"type": "SELL", "price": 4, "symbol": "ETHUSDT", "id": "f4"})
    both.wait_signals(4)
    wait_until(lambda: len(btc.signals()) >= 2)

    assert answer == {"symbols": ["ETHUSDT"]}
    assert [s["price"] for s in btc.signals()] == [2, 4]
    assert btc.sio.call("subscribe", {"symbols": "not a list!"}, timeout=5)["error"]


def test_forged_seq_on_the_channel_cannot_displace_the_real_signal(web, connect, redis_client, publisher):
    client = connect(web.url)
    welcome = wait_until(lambda: client.of("welcome"))[0]
    first = publisher.publish_signal({"type": "BUY", "price": 1, "id": "real1"})
    client.wait_signals(1)

    forged = {"type": "SELL", "price": 999, "seq": first["seq"] + 1, "epoch": first["epoch"]}
    redis_client.publish("quantum_signals", json.dumps(forged))
    real = publisher.publish_signal({"type": "BUY", "price": 2, "id": "real2"})

    received = client.wait_signals(2)
    assert welcome["epoch"] == first["epoch"]
    assert [(s["seq"], s["price"]) for s in received] == [(first["seq"], 1), (real["seq"], 2)]
    marker = publisher.publish_signal({"type": "SELL", "price": 3, "id": "marker"})
    wait_until(lambda: client.signals()[-1]["seq"] == marker["seq"])
    assert all(s["price"] != 999 for s in client.signals())
