"""Auth, CORS, payload limits and the HTTP endpoints, against a real web process."""

import requests
import socketio
import websocket

from harness.clients import NodeClient
from harness.polling import wait_until


def refusal(url: str, auth: dict) -> str:
    """The reason the server gives for refusing a connect with AUTH."""
    reasons = []
    client = socketio.Client(reconnection=False)
    client.on("connect_error", lambda data: reasons.append(data["message"]))
    try:
        client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return reasons[0]
    client.disconnect()
    raise AssertionError(f"connect with {auth} was accepted")


def test_token_required_when_configured(start_web, connect):
    web = start_web(SIGNALS_AUTH_TOKEN="alpha,beta")

    assert "unauthorized" in refusal(web.url, {"token": "wrong"})
    assert "unauthorized" in refusal(web.url, {})
    accepted = connect(web.url, auth={"token": "beta"})
    wait_until(lambda: accepted.of("welcome"))

    assert requests.get(web.url + "/api/signals").status_code == 401
    assert requests.get(web.url + "/api/signals", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert requests.get(web.url + "/api/signals", headers={"Authorization": "Bearer alpha"}).status_code == 200


def test_js_client_sees_refusal_as_connect_error(start_web):
    web = start_web(SIGNALS_AUTH_TOKEN="alpha")
    node = NodeClient(web.url, auth={"token": "x"})
    events = node.finish()

    assert events[0]["event"] == "connect_error" and "unauthorized" in events[0]["data"]


def test_bad_connect_parameters_are_refused_with_the_reason(web):
    assert "since='yesterday' is not an integer" in refusal(web.url, {"since": "yesterday"})
    assert "since=-1 is out of range" in refusal(web.url, {"since": -1})
    assert '"symbols" must be a list' in refusal(web.url, {"symbols": {"a": 1}})


def _handshake(url: str, origin: str | None):
    headers = {"Origin": origin} if origin else {}
    return requests.get(url + "/socket.io/?EIO=4&transport=polling", headers=headers, timeout=5)


def test_cors_same_origin_only_by_default(web):
    assert _handshake(web.url, None).status_code == 200
    assert _handshake(web.url, web.url).status_code == 200
    assert _handshake(web.url, "https://evil.example").status_code == 400


def test_cors_origins_allow_listed(start_web):
    web = start_web(CORS_ORIGINS="https://app.example")

    allowed = _handshake(web.url, "https://app.example")

    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert _handshake(web.url, "https://evil.example").status_code == 400


def test_oversized_socketio_packet_closes_that_connection_only(web, connect, publisher):
    good = connect(web.url)
    wait_until(lambda: good.of("welcome"))
    ws = websocket.create_connection(web.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket")
    ws.recv()  # engine.io open packet
    ws.send("40")
    ws.recv()  # namespace connect ack

    ws.send('42["subscribe",{"symbols":["' + "A" * 200_000 + '"]}]')

    wait_until(lambda: _closed(ws), 10, message="oversized sender disconnected")
    publisher.publish_signal({"type": "BUY", "price": 5, "id": "after-oversize"})
    assert good.wait_signals(1)[0]["price"] == 5


def _closed(ws) -> bool:
    try:
        ws.settimeout(0.2)
        frame = ws.recv()
        return frame == "" or frame is None
    except websocket.WebSocketTimeoutException:
        return False
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        return True


def test_api_signals_since_symbol_limit(web, publisher):
    for i in range(10):
        publisher.publish_signal(
            {"type": "BUY", "price": 1 + i, "symbol": "BTCUSDT" if i % 2 else "ETHUSDT", "id": f"api{i}"}
        )

    everything = requests.get(web.url + "/api/signals").json()
    newest_btc = requests.get(web.url + "/api/signals?symbol=btcusdt&limit=2").json()
    after_7 = requests.get(web.url + "/api/signals?since=7").json()

    assert [s["seq"] for s in everything["signals"]] == list(range(1, 11))
    assert everything["epoch"] == everything["signals"][0]["epoch"]
    assert [s["seq"] for s in newest_btc["signals"]] == [8, 10]
    assert [s["seq"] for s in after_7["signals"]] == [8, 9, 10]


def test_api_signals_rejects_bad_parameters(web):
    for query in ("since=-1", "since=abc", "limit=0", "limit=1001", "symbol=BTC%20USD", "symbol=$$$"):
        answer = requests.get(web.url + "/api/signals?" + query)
        assert answer.status_code == 400, query
        assert answer.json()["error"]


def test_symbols_follow_the_contract_rule_at_both_doors(web, connect, publisher):
    slashed = connect(web.url, auth={"symbols": ["btc/usdt"]})
    dashed = connect(web.url)
    wait_until(lambda: slashed.of("welcome") and dashed.of("welcome"))
    assert dashed.sio.call("subscribe", {"symbols": ["BTC-USDT", "ETH/USDT:USDT"]}, timeout=5) == {
        "symbols": ["BTC-USDT", "ETH/USDT:USDT"]
    }
    assert "error" in dashed.sio.call("subscribe", {"symbols": ["BTC USDT"]}, timeout=5)
    assert "symbols" in refusal(web.url, {"symbols": ["$$$"]})

    for n, symbol in enumerate(["BTC/USDT", "BTC-USDT", "ETH/USDT:USDT", "ETHUSDT"]):
        publisher.publish_signal({"type": "BUY", "price": 1 + n, "symbol": symbol, "id": f"sym{n}"})
    # One last signal for each client's filter: a client's signals arrive in order, so once its marker is
    # in, anything the rooms let through by mistake would be in too.
    publisher.publish_signal({"type": "SELL", "price": 9, "symbol": "BTC/USDT", "id": "marker-slashed"})
    publisher.publish_signal({"type": "SELL", "price": 9, "symbol": "BTC-USDT", "id": "marker-dashed"})

    assert [s["id"] for s in slashed.wait_signals(2)] == ["sym0", "marker-slashed"]
    assert [s["id"] for s in dashed.wait_signals(3)] == ["sym1", "sym2", "marker-dashed"]
    answer = requests.get(web.url + "/api/signals", params={"symbol": "btc/usdt"})
    assert [s["id"] for s in answer.json()["signals"]] == ["sym0", "marker-slashed"]
    assert requests.get(web.url + "/api/signals?symbol=BTC-USDT").json()["signals"][0]["symbol"] == "BTC-USDT"


def test_health_ready_and_metrics(web, connect, publisher):
    client = connect(web.url)
    wait_until(lambda: client.of("welcome"))
    publisher.publish_signal({"type": "BUY", "price": 5, "id": "m1"})
    client.wait_signals(1)

    metrics = requests.get(web.url + "/metrics").text
    ready = requests.get(web.url + "/readyz").json()

    assert requests.get(web.url + "/healthz").status_code == 200
    assert ready["status"] == "ready" and ready["relay"] == "subscribed"
    assert "qs_signals_relayed_total 1.0" in metrics
    assert "qs_clients_connected 1.0" in metrics
    assert "qs_relay_lag_seconds_count 1.0" in metrics
