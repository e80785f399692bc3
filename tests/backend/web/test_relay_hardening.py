"""Hostile input must never silence the relay: poison messages, forged events, junk frames, a stalled loop."""

import json
import time

import pytest
import requests
import websocket

from backend.signal_schema import HISTORY_KEY, InvalidSignal
from backend.web.relay import HEARTBEAT_STALE_S
from harness.polling import wait_until
from tests.chaos.hostile import metric, raw_socketio

DEEP = '{"type":"BUY","price":5,"indicators":' + "[" * 600 + "]" * 600 + "}"


def numsub(redis_client) -> int:
    """Subscribers of the signal channel, as Redis counts them."""
    return dict(redis_client.pubsub_numsub("quantum_signals"))["quantum_signals"]


def test_deep_nesting_on_the_channel_leaves_live_delivery_working(web, connect, redis_client, publisher):
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")

    for _ in range(20):
        redis_client.publish("quantum_signals", DEEP)
    redis_client.publish("quantum_signals", '{"type":"SELL","price":7}')
    stored = publisher.publish_signal({"type": "BUY", "price": 8, "id": "after-poison"})

    assert client.wait_signals(2) == [{"type": "SELL", "price": 7}, stored]
    assert numsub(redis_client) == 1
    wait_until(lambda: metric(web.url, "qs_malformed_dropped_total") >= 20, message="20 poison messages counted")
    assert requests.get(web.url + "/readyz").status_code == 200


def test_publisher_refuses_deep_nesting(publisher, redis_client):
    deep = {"type": "BUY", "price": 5, "indicators": json.loads("[" * 600 + "]" * 600)}

    with pytest.raises(InvalidSignal, match="nested deeper than 32 levels"):
        publisher.publish_signal(deep)
    assert redis_client.xlen(HISTORY_KEY) == 0


def test_a_poisoned_history_entry_is_skipped_by_replay_and_catch_up(start_web, connect, redis_client, publisher):
    first = publisher.publish_signal({"type": "BUY", "price": 1, "id": "h1"})
    # An entry written around the publisher (an old version, a hand-made XADD): replay must step over it.
    redis_client.xadd(HISTORY_KEY, {"sym": "", "sig": DEEP[:-1] + f',"seq":2,"epoch":"{first["epoch"]}"}}'}, id="2-0")
    redis_client.xadd(HISTORY_KEY, {"sym": "", "sig": "not json"}, id="3-0")
    redis_client.set("qs:seq", 3)
    last = publisher.publish_signal({"type": "SELL", "price": 4, "id": "h4"})
    web = start_web()  # its relay catches up over the two bad entries at start

    client = connect(web.url, auth={"since": 0})

    assert client.wait_signals(2) == [first, last]
    assert requests.get(web.url + "/readyz").json()["seq"] == 4
    after = publisher.publish_signal({"type": "BUY", "price": 5, "id": "h5"})
    assert client.wait_signals(3)[-1] == after


def test_forged_out_of_range_seq_keeps_the_relay_subscribed(web, connect, redis_client):
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")
    epoch = requests.get(web.url + "/readyz").json()["epoch"]

    for n in range(50):
        redis_client.publish(
            "quantum_signals", json.dumps({"type": "BUY", "price": 1, "seq": 2**64 + n, "epoch": epoch})
        )
        redis_client.publish("quantum_signals", json.dumps({"type": "SELL", "price": 1 + n}))

    assert [s["price"] for s in client.wait_signals(50)] == [1 + n for n in range(50)]
    assert numsub(redis_client) == 1
    assert requests.get(web.url + "/readyz").status_code == 200
    assert metric(web.url, "qs_relay_reconnects_total") == 0


def test_reserved_event_names_from_a_client_are_refused(web, publisher):
    publisher.publish_signal({"type": "BUY", "price": 1, "id": "r1"})
    ws = raw_socketio(web.url, auth={"since": 0})
    try:
        wait_until(lambda: metric(web.url, "qs_clients_connected") == 1, message="one client connected")
        for _ in range(20):
            ws.send('42["connect"]')
        ws.send('42["disconnect"]')
        wait_until(
            lambda: metric(web.url, 'qs_client_events_refused_total{reason="reserved:connect"}') == 20,
            message="20 forged connects refused",
        )
        wait_until(
            lambda: metric(web.url, 'qs_client_events_refused_total{reason="reserved:disconnect"}') == 1,
            message="the forged disconnect refused",
        )
        publisher.publish_signal({"type": "SELL", "price": 2, "id": "r2"})

        frames = _read_frames(ws, until=lambda frames: any('"r2"' in f for f in frames))
    finally:
        ws.close()

    assert sum(f.startswith('42["welcome"') for f in frames) == 1
    assert sum('"r1"' in f for f in frames) == 1, "a forged connect replayed history again"
    assert metric(web.url, "qs_clients_connected") <= 1
    wait_until(lambda: metric(web.url, "qs_clients_connected") == 0, message="the gauge back to 0")


def _read_frames(ws, until, timeout: float = 10.0) -> list[str]:
    """Text frames from WS (answering pings) until UNTIL(frames) holds."""
    frames: list[str] = []
    deadline = time.monotonic() + timeout
    ws.settimeout(0.5)
    while not until(frames):
        assert time.monotonic() < deadline, f"timed out; frames so far: {frames[:10]}"
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        if frame == "2":
            ws.send("3")
        frames.append(frame)
    return frames


def test_junk_frames_log_a_few_lines_not_tracebacks(web):
    before = len(web.log().splitlines())
    junk = ["4zzz", '42["subscribe",' + "[" * 2000 + "]" * 2000 + "]", "49[]", '42["nonsense"', "4" + "2" * 100]
    for n in range(100):
        ws = raw_socketio(web.url)
        ws.send(junk[n % len(junk)])
        ws.close()
    wait_until(lambda: requests.get(web.url + "/healthz", timeout=5).ok, message="healthz")
    requests.get(web.url + "/readyz", timeout=5)  # a request after the junk: its lines would be in by now

    lines = web.log().splitlines()[before:]
    assert len(lines) < 10, "\n".join(lines[:30])
    assert not any("Traceback" in line for line in lines)


def test_lone_surrogate_token_is_refused_not_crashed(start_web):
    web = start_web(SIGNALS_AUTH_TOKEN="secret")
    ws = websocket.create_connection(web.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=5)
    try:
        ws.recv()
        ws.send('40{"token":"\\ud800"}')
        answer = ws.recv()
    finally:
        ws.close()

    assert answer.startswith("44") and "unauthorized" in answer


def test_subscribe_is_rate_limited_per_client(start_web, connect):
    web = start_web(SUBSCRIBE_RATE_LIMIT="3/second")
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")

    answers = [client.sio.call("subscribe", {"symbols": [f"S{i}"]}, timeout=5) for i in range(6)]

    assert [a.get("symbols") for a in answers[:3]] == [["S0"], ["S1"], ["S2"]]
    assert all("too many subscribe events" in a.get("error", "") for a in answers[3:])


def test_readiness_follows_the_loop_heartbeat(app):
    relay = app.state.relay
    relay.subscribed = True
    relay.beat()
    assert relay.ready()

    relay.heartbeat -= HEARTBEAT_STALE_S + 1  # as if the loop had hung that long

    assert not relay.alive() and not relay.ready()


def test_large_messages_in_a_burst_keep_the_relay_subscribed(web, connect, redis_client):
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")
    big = b'{"type":"BUY","price":1,"x":"' + b"a" * 8_000_000 + b'"}'  # over MAX_SIGNAL_BYTES: dropped

    for n in range(5):
        redis_client.publish("quantum_signals", big)
        redis_client.publish("quantum_signals", json.dumps({"type": "SELL", "price": 1 + n}))

    assert [s["price"] for s in client.wait_signals(5, timeout=20)] == [1, 2, 3, 4, 5]
    assert metric(web.url, "qs_relay_reconnects_total") == 0


def test_socketio_manager_messages_on_other_channels_reach_nobody(web, connect, redis_client, publisher):
    """No message queue: what python-socketio's Redis managers would obey (emit, close_room) moves nothing."""
    import pickle

    client = connect(web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")
    forged = [
        {"method": "emit", "event": "new_signal", "data": {"type": "BUY", "price": 1, "seq": 10**15}, "namespace": "/"},
        {"method": "emit", "event": "signal_outcome", "data": {"epoch": "x", "seq": 1, "h": 1, "r": 9.9}},
        {"method": "emit", "event": "resync", "data": {"epoch": "forged"}, "namespace": "/", "room": None},
        {"method": "close_room", "room": "all", "namespace": "/"},
    ]
    for channel in ("flask-socketio", "socketio", "quantum_signals:outcomes"):
        for message in forged:
            redis_client.publish(channel, pickle.dumps(message))
            redis_client.publish(channel, json.dumps(message))

    stored = [publisher.publish_signal({"type": "SELL", "price": p, "id": f"after-forgery-{p}"}) for p in (2, 3)]

    assert client.wait_signals(2) == stored  # still in the live rooms, nothing forged before or between
    assert not client.of("signal_outcome") and not client.of("resync")
