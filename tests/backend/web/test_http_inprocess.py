"""The HTTP API in this process (Flask's test client) on the suite's real Redis: probes, /api/signals, limits."""

import itertools

import pytest

IDS = itertools.count()
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def publish(publisher, *symbols: str) -> list[dict]:
    """One signal per symbol, in order; the stored signals."""
    return [
        publisher.publish_signal({"type": "BUY", "price": 100.0, "symbol": symbol, "id": f"{symbol}-{next(IDS)}"})
        for symbol in symbols
    ]


def seqs(response) -> list[int]:
    """The seqs of an /api/signals answer, in order."""
    return [signal["seq"] for signal in response.get_json()["signals"]]


def test_healthz_answers_ok(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}


def test_signals_since_limit_and_symbol(client, publisher):
    stored = publish(publisher, "BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT")

    everything = client.get("/api/signals")

    assert everything.status_code == 200 and everything.mimetype == "application/json"
    assert everything.get_json()["signals"] == stored
    assert everything.get_json()["epoch"] == stored[0]["epoch"]
    assert seqs(client.get("/api/signals?since=3")) == [4, 5]
    assert seqs(client.get("/api/signals?limit=2")) == [4, 5]  # the newest, oldest first
    assert seqs(client.get("/api/signals?symbol=ethusdt")) == [2, 4]
    assert seqs(client.get("/api/signals?symbol=BTCUSDT&since=1&limit=1")) == [5]


@pytest.mark.parametrize(
    "query, names",
    [
        ("since=-1", "since"),
        ("since=abc", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("symbol=BTC%20USDT", "symbol"),
        ("symbol=" + "A" * 40, "symbol"),
    ],
)
def test_a_bad_parameter_is_a_400_with_a_json_error_naming_it(client, query, names):
    answer = client.get(f"/api/signals?{query}")

    assert answer.status_code == 400 and answer.mimetype == "application/json"
    assert names in answer.get_json()["error"]


def test_a_publish_after_a_read_is_in_the_next_read(client, publisher):
    publish(publisher, "BTCUSDT")
    first = client.get("/api/signals?symbol=BTCUSDT")
    publish(publisher, "BTCUSDT", "ETHUSDT")

    second = client.get("/api/signals?symbol=BTCUSDT")

    assert seqs(first) == [1] and seqs(second) == [1, 2]
    assert seqs(client.get("/api/signals?symbol=BTCUSDT")) == [1, 2]  # the cached answer is the same


def test_every_response_carries_the_security_headers(client):
    for path in ("/healthz", "/api/signals", "/api/signals?limit=0", "/no-such-page"):
        headers = client.get(path).headers
        assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS, path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[-1].split(";")[0]


def test_over_the_rate_limit_is_a_429_with_retry_after_and_probes_are_exempt(make_app):
    client = make_app(HTTP_RATE_LIMIT="3/minute").test_client()

    codes = [client.get("/api/signals").status_code for _ in range(4)]
    refused = client.get("/api/signals")

    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "error" in refused.get_json()
    assert [client.get("/healthz").status_code for _ in range(5)] == [200] * 5


def test_a_host_not_in_allowed_hosts_is_a_400_but_the_probes_answer(make_app):
    client = make_app(ALLOWED_HOSTS="signals.example.com,.example.org").test_client()

    def status(path, host):
        return client.get(path, headers={"Host": host}).status_code

    assert status("/api/signals", "signals.example.com") == 200
    assert status("/api/signals", "signals.example.com:8443") == 200
    assert status("/api/signals", "a.example.org") == 200
    assert status("/api/signals", "attacker.test") == 400
    assert status("/", "attacker.test") == 400
    assert status("/socket.io/?EIO=4&transport=polling", "attacker.test") == 400
    assert status("/healthz", "attacker.test") == 200


def test_a_token_is_required_when_configured(make_app):
    client = make_app(SIGNALS_AUTH_TOKEN="s3cret").test_client()

    assert client.get("/api/signals").status_code == 401
    assert client.get("/api/signals", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/signals", headers={"Authorization": "Bearer s3cret"}).status_code == 200
