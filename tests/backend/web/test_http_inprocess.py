"""The HTTP API in this process (starlette's TestClient) on the suite's real Redis: probes, /api/signals, limits,
and the OpenAPI document."""

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
    return [signal["seq"] for signal in response.json()["signals"]]


def test_healthz_answers_ok(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_signals_since_limit_and_symbol(client, publisher):
    stored = publish(publisher, "BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT")

    everything = client.get("/api/signals")

    assert everything.status_code == 200 and everything.headers["Content-Type"] == "application/json"
    assert everything.json()["signals"] == stored
    assert everything.json()["epoch"] == stored[0]["epoch"]
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

    assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json"
    assert names in answer.json()["error"]


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


def test_over_the_rate_limit_is_a_429_with_retry_after_and_probes_are_exempt(make_client):
    client = make_client(HTTP_RATE_LIMIT="3/minute")

    codes = [client.get("/api/signals").status_code for _ in range(4)]
    refused = client.get("/api/signals")

    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "error" in refused.json()
    assert [client.get("/healthz").status_code for _ in range(5)] == [200] * 5


def test_a_host_not_in_allowed_hosts_is_a_400_but_the_probes_answer(make_client):
    client = make_client(ALLOWED_HOSTS="signals.example.com,.example.org")

    def status(path, host):
        return client.get(path, headers={"Host": host}).status_code

    assert status("/api/signals", "signals.example.com") == 200
    assert status("/api/signals", "signals.example.com:8443") == 200
    assert status("/api/signals", "a.example.org") == 200
    assert status("/api/signals", "attacker.test") == 400
    assert status("/", "attacker.test") == 400
    assert status("/socket.io/?EIO=4&transport=polling", "attacker.test") == 400
    assert status("/healthz", "attacker.test") == 200


def test_a_token_is_required_when_configured(make_client):
    client = make_client(SIGNALS_AUTH_TOKEN="s3cret")

    assert client.get("/api/signals").status_code == 401
    assert client.get("/api/signals", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/signals", headers={"Authorization": "Bearer s3cret"}).status_code == 200


@pytest.mark.parametrize(
    "path, method, answer",
    [
        ("/api/signals", "get", "200"),
        ("/api/signals", "post", "201"),
        ("/api/candles", "get", "200"),
        ("/api/stats", "get", "200"),
        ("/api/outcomes", "get", "200"),
    ],
)
def test_openapi_describes_each_body_and_answer(client, path, method, answer):
    operation = client.get("/api/openapi.json").json()["paths"][path][method]

    answers = operation["responses"]
    assert answers[answer]["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
    refusals = {status: body for status, body in answers.items() if status[0] in "45"}
    assert "400" in refusals and "422" not in answers  # parameters are parsed into 400s, never FastAPI's 422
    for body in refusals.values():
        assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_openapi_describes_the_intake_body_as_json_or_text(client):
    spec = client.get("/api/openapi.json").json()

    body = spec["paths"]["/api/signals"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/plain"}
    assert {"type", "price", "symbol", "bar_time", "id"} <= set(body["application/json"]["schema"]["properties"])
    names = [parameter["name"] for parameter in spec["paths"]["/api/signals"]["get"]["parameters"]]
    assert names == ["since", "limit", "symbol"]
    assert spec["components"]["schemas"]["Signal"]["properties"]["type"]["enum"] == ["BUY", "SELL"]
