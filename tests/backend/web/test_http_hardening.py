"""HTTP hardening against a real web process: security headers, ALLOWED_HOSTS, no addresses in errors,
rate limits, the /api/signals cache; redact_url."""

import re

import pytest
import requests

from backend.redis_client import redact_url
from harness.polling import wait_until
from harness.ports import free_port

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def signal(symbol: str, kind: str, price: float) -> dict:
    """A minimal signal for the publisher."""
    return {"type": kind, "price": price, "symbol": symbol, "timeframe": "1m", "strategy": "sma_cross"}


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/signals",
        "/healthz",
        "/readyz",
        "/metrics",
        "/static/app.js",
        "/socket.io/?EIO=4&transport=polling",
        "/no-such-page",
        "/api/no-such-endpoint",
    ],
)
def test_security_headers_on_every_response(web, path):
    answer = requests.get(web.url + path, timeout=5)

    assert answer.status_code == (404 if "no-such" in path else 200)
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, (name, answer.headers)
    policy = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_allowed_hosts_refuses_other_hosts_on_pages_and_socketio(start_web):
    web = start_web(ALLOWED_HOSTS="example.com")
    polling = "/socket.io/?EIO=4&transport=polling"

    for path in ("/", "/api/signals", polling):
        refused = requests.get(web.url + path, headers={"Host": "evil.com"}, timeout=5)
        assert refused.status_code == 400, path
        assert refused.json() == {"error": "host 'evil.com' is not in ALLOWED_HOSTS"}
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
    rebound = requests.get(web.url + "/", headers={"Host": f"127.0.0.1:{web.port}"}, timeout=5)
    assert rebound.status_code == 400  # a DNS-rebound name reaches the server as whatever Host the page used
    for host in ("example.com", "example.com:5000", "EXAMPLE.com"):
        assert requests.get(web.url + "/", headers={"Host": host}, timeout=5).status_code == 200, host
        opened = requests.get(web.url + polling, headers={"Host": host}, timeout=5)
        assert opened.status_code == 200 and '"sid"' in opened.text, host
    # Probes come by pod IP: they are answered whatever the Host.
    assert requests.get(web.url + "/healthz", headers={"Host": "10.1.2.3:5000"}, timeout=5).status_code == 200


def test_readyz_and_api_errors_name_no_address(start_web):
    port = free_port()  # nothing listens there
    web = start_web(REDIS_URL=f"redis://127.0.0.1:{port}/0", wait=False)

    def not_ready():
        """[the answer] once /readyz answers 503 (a Response is falsy when not ok, hence the list)."""
        try:
            answer = requests.get(web.url + "/readyz", timeout=5)
        except requests.RequestException:
            return None
        return [answer] if answer.status_code == 503 else None

    answers = wait_until(not_ready, 30, 0.1, message="/readyz answering 503")
    answers += [requests.get(web.url + "/readyz", timeout=5) for _ in range(3)]
    answers += [requests.get(web.url + "/api/signals", timeout=5) for _ in range(3)]

    for answer in answers:
        assert answer.status_code == 503
        assert "127.0.0.1" not in answer.text and str(port) not in answer.text, answer.text
        assert not re.search(r"\d+\.\d+\.\d+\.\d+|redis://|localhost", answer.text), answer.text
    assert "Redis unavailable (ConnectionError)" in answers[0].json()["reason"]
    assert answers[-1].json() == {"error": "Redis unavailable (ConnectionError)"}
    # The full error goes to the log, once for the whole outage rather than once per request.
    logged = wait_until(
        lambda: re.findall(rf"Redis unavailable: ConnectionError.*127\.0\.0\.1:{port}", web.log()),
        10,
        message="the full Redis error in the log",
    )
    assert len(logged) == 1, logged


def test_rate_limit_answers_429_with_retry_after_and_spares_the_probes(start_web):
    web = start_web(HTTP_RATE_LIMIT="5/second")
    session = requests.Session()

    codes = [session.get(web.url + "/api/signals", timeout=5) for _ in range(6)]

    assert [answer.status_code for answer in codes] == [200] * 5 + [429]
    limited = codes[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert "5 per 1 second" in limited.json()["error"] and "retry after" in limited.json()["error"]
    assert limited.headers["X-Content-Type-Options"] == "nosniff"
    assert session.get(web.url + "/", timeout=5).status_code == 429  # the dashboard shares the budget
    for path in ("/healthz", "/readyz", "/metrics") * 5:
        assert session.get(web.url + path, timeout=5).status_code == 200, path


def test_cached_signals_change_with_every_publish_and_epoch(web, publisher, redis_client):
    first = publisher.publish_signal(signal("BTCUSDT", "BUY", 60000))
    url = web.url + "/api/signals"
    assert requests.get(url, timeout=5).json()["signals"] == [first]
    assert requests.get(url, timeout=5).json()["signals"] == [first]  # served from the cache

    second = publisher.publish_signal(signal("ETHUSDT", "SELL", 3000))
    assert requests.get(url, timeout=5).json()["signals"] == [first, second]
    assert requests.get(url + "?limit=1", timeout=5).json()["signals"] == [second]
    assert requests.get(url + "?symbol=btcusdt", timeout=5).json()["signals"] == [first]
    assert requests.get(url + f"?since={second['seq']}", timeout=5).json()["signals"] == []
    third = publisher.publish_signal(signal("BTCUSDT", "SELL", 60500))
    assert requests.get(url + "?symbol=btcusdt", timeout=5).json()["signals"] == [first, third]
    assert requests.get(url + f"?since={second['seq']}", timeout=5).json()["signals"] == [third]

    redis_client.flushall()  # history lost: a new epoch, seq starts again at 1
    fourth = publisher.publish_signal(signal("BTCUSDT", "BUY", 61000))
    answer = requests.get(url, timeout=5).json()
    assert fourth["seq"] == first["seq"] and answer == {"epoch": fourth["epoch"], "signals": [fourth]}


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host/0", "redis://user:***@host/0"),
        ("redis://s3cret@host:6379", "redis://***@host:6379"),
        ("rediss://:s3cret@host:6380/0?ssl_cert_reqs=none", "rediss://:***@host:6380/0?ssl_cert_reqs=none"),
        ("redis://host:6379/0?password=s3cret&db=1", "redis://host:6379/0?password=***&db=1"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ],
)
def test_redact_url_hides_the_password(url, shown):
    assert redact_url(url) == shown
