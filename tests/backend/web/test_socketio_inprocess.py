"""Socket.IO in this process (a real uvicorn in a thread, python-socketio clients) on the suite's real Redis."""

from harness.polling import wait_until


def publish(publisher, symbol: str = "BTCUSDT", n: int = 0) -> dict:
    """One signal; the stored signal."""
    return publisher.publish_signal({"type": "SELL", "price": 50.0 + n, "symbol": symbol, "id": f"{symbol}-{n}"})


def test_welcome_on_connect_carries_the_history_cursor(sio_client, publisher):
    stored = [publish(publisher, n=n) for n in range(2)]

    socket = sio_client()

    assert socket.connected
    assert socket.wait_for("welcome") == [{"epoch": stored[0]["epoch"], "seq": 2}]
    assert socket.signals() == []  # no `since`: live only


def test_replay_from_since_then_live_in_order(sio_client, publisher):
    stored = [publish(publisher, n=n) for n in range(4)]

    socket = sio_client(auth={"since": 1})
    socket.wait_for("new_signal", 3)
    live = publish(publisher, n=4)

    assert socket.wait_for("new_signal", 4) == [*stored[1:], live]
    assert socket.of("welcome")[0]["seq"] == 4


def test_since_zero_replays_everything(sio_client, publisher):
    stored = [publish(publisher, n=n) for n in range(3)]

    socket = sio_client(auth={"since": 0})

    assert socket.wait_for("new_signal", 3) == stored


def test_subscribe_acknowledges_and_filters_the_live_stream(sio_client, publisher):
    socket = sio_client()
    socket.wait_for("welcome")

    ack = socket.emit("subscribe", {"symbols": ["ethusdt"]})
    publish(publisher, "BTCUSDT", 0)
    eth = publish(publisher, "ETHUSDT", 1)
    last = publish(publisher, "ETHUSDT", 2)

    assert ack == {"symbols": ["ETHUSDT"]}
    assert socket.wait_for("new_signal", 2) == [eth, last]


def test_a_bad_subscribe_is_answered_with_an_error_and_changes_nothing(sio_client, publisher):
    socket = sio_client(auth={"symbols": ["BTCUSDT"]})
    socket.wait_for("welcome")

    ack = socket.emit("subscribe", {"symbols": "not a symbol!"})
    publish(publisher, "ETHUSDT", 0)
    btc = publish(publisher, "BTCUSDT", 1)

    assert "error" in ack and "symbols" in ack["error"]
    assert socket.wait_for("new_signal") == [btc]


def test_a_wrong_token_is_refused_and_the_right_one_welcomed(make_app, sio_client, publisher):
    app = make_app(SIGNALS_AUTH_TOKEN="s3cret,other")
    publish(publisher)

    refused = [sio_client(auth=auth, of=app) for auth in (None, {"token": "wrong"}, {"token": 42})]
    welcomed = sio_client(auth={"token": "other", "since": 0}, of=app)

    assert [socket.connected for socket in refused] == [False, False, False]
    assert welcomed.connected and welcomed.wait_for("new_signal")[0]["seq"] == 1
    wait_until(lambda: welcomed.of("welcome"), message="welcome")
    assert all(socket.of("welcome") == [] for socket in refused)


def test_a_bad_cursor_is_refused_naming_it(sio_client):
    socket = sio_client(auth={"since": "yesterday"})

    assert not socket.connected
    assert socket.of("connect_error")[0]["message"].startswith("bad request: since='yesterday' is not an integer")


def test_the_token_and_cursor_may_come_in_the_query_string(live_server, publisher):
    from tests.backend.web.conftest import LiveSocket

    stored = publish(publisher)
    server = live_server(SIGNALS_AUTH_TOKEN="s3cret")

    refused = LiveSocket(server.url + "?token=wrong")
    welcomed = LiveSocket(server.url + "?token=s3cret&since=0")
    try:
        assert not refused.connected and refused.of("connect_error")[0]["message"].startswith("unauthorized: ")
        assert welcomed.wait_for("new_signal") == [stored]
    finally:
        welcomed.close()
