"""One notification attempt is bounded: in what it reads of an answer, in time (connect to last byte), and in
where it goes (no redirects), for webhooks and Apprise destinations alike; its human message has no control
characters. Each attempt runs here as the worker runs it, against real hostile receivers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time

import pytest

from backend import destinations
from harness.hostile_receiver import HostileReceiver, wait_closed
from harness.polling import wait_until
from harness.receiver import Receiver
from tasks import notify as notify_tasks

SECRET = "bounds-webhook-secret-0123456789"
TIMEOUT_S = 2.0
MARGIN_S = 1.5  # thread start, a timer's tick, the library unwinding: far below the drip's ~200 s
# What the kernel may buffer between the two ends of a loopback connection (send and receive buffers at their
# autotuned maximum): bytes the receiver "sent" that the worker never read.
KERNEL_BUFFERS = 32 * 1024 * 1024


def stored_signal(**fields) -> str:
    """A stored signal's bytes, as the dispatcher hands them to a delivery."""
    signal = {
        "id": "bounds:1",
        "type": "BUY",
        "price": 60000.5,
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "strategy": "sma_cross:fast=9,slow=21",
        "bar_time": "2026-11-25T16:42:00Z",
        "source": "test",
        "reason": "SMA(9) crossed above SMA(21)",
        "epoch": "e1",
        "seq": 1,
        **fields,
    }
    return json.dumps(signal)


def attempt(url: str, raw: str | None = None) -> tuple[list, threading.Thread]:
    """Start one attempt to URL in a thread, as a worker runs it; the list gets (outcome, seconds) when it ends."""
    destination = destinations.parse_destination(url, "NOTIFY_URLS")
    raw = raw or stored_signal()
    result: list = []

    def run():
        began = time.monotonic()
        if destination.kind == destinations.WEBHOOK:
            outcome = notify_tasks.post_webhook(destination, raw, SECRET, TIMEOUT_S)
        else:
            outcome = notify_tasks.send_apprise(destination, raw, TIMEOUT_S)
        result.append((outcome, time.monotonic() - began))

    thread = threading.Thread(target=run, name="attempt", daemon=True)
    thread.start()
    return result, thread


def ended(result: list, what: str):
    """Poll until the attempt ended, at most its deadline and a margin; return (outcome, seconds)."""
    wait_until(lambda: result, TIMEOUT_S + MARGIN_S, 0.02, f"{what} ending within NOTIFY_TIMEOUT_S + {MARGIN_S} s")
    return result[0]


@pytest.fixture
def hostile():
    """A hostile receiver whose /redirect points at a plain receiver (what a redirect would reach)."""
    with Receiver() as target, HostileReceiver(redirect_to=target.url("/elsewhere")) as server:
        server.target = target
        yield server


@pytest.mark.parametrize("scheme", ["http", "json"])
def test_a_destination_answering_300_mb_costs_a_bounded_read(hostile, scheme):
    result, _ = attempt(hostile.url("/huge", scheme))

    outcome, _seconds = ended(result, f"the {scheme} attempt")
    [exchange] = hostile.received("/huge")
    wait_closed(exchange, 5)
    assert outcome.ok  # a 2xx status is the delivery; a webhook's body is never read, Apprise's up to its cap
    assert exchange.sent < KERNEL_BUFFERS, f"the worker took {exchange.sent:,} bytes of a 300 MB answer"


@pytest.mark.parametrize("scheme", ["http", "json"])
def test_a_destination_dripping_its_answer_is_cut_at_the_deadline(hostile, scheme):
    result, _ = attempt(hostile.url("/drip", scheme))

    outcome, seconds = ended(result, f"the {scheme} attempt")
    [exchange] = hostile.received("/drip")
    assert TIMEOUT_S - 0.1 <= seconds <= TIMEOUT_S + MARGIN_S
    assert not outcome.ok and outcome.retry and outcome.slow
    assert "NOTIFY_TIMEOUT_S=2" in outcome.error
    wait_closed(exchange, 5)  # the worker hung up, at its deadline
    assert exchange.ended - exchange.began <= TIMEOUT_S + MARGIN_S
    assert exchange.sent < 10


def test_a_webhook_redirect_is_not_followed_and_dead_letters_with_its_reason(hostile):
    result, _ = attempt(hostile.url("/redirect"))

    outcome, _seconds = ended(result, "the webhook attempt")
    assert not outcome.ok and not outcome.retry
    assert outcome.error == (
        f"HTTP 307 redirect to http://127.0.0.1:{hostile.target.port}/*** not followed; set the destination's final URL"
    )
    assert hostile.target.received() == []


def test_an_apprise_redirect_is_not_followed(hostile):
    result, _ = attempt(hostile.url("/redirect", "json"))

    outcome, _seconds = ended(result, "the Apprise attempt")
    assert not outcome.ok and outcome.retry
    assert len(hostile.received("/redirect")) == 1
    assert hostile.target.received() == []


def test_an_apprise_url_that_turns_redirects_on_is_refused():
    with pytest.raises(destinations.ConfigError, match="redirect=yes is not allowed"):
        destinations.parse_destination("json://127.0.0.1:9/x?redirect=yes", "NOTIFY_URLS")


def test_control_characters_never_reach_an_apprise_message():
    raw = stored_signal(symbol="BTC\nUSDT", reason="line one\r\nFAKE: SELL\x00\x1b[2J\u202edone\tend")
    with Receiver() as receiver:
        result, _ = attempt(f"json://127.0.0.1:{receiver.port}/apprise", raw)
        outcome, _seconds = ended(result, "the Apprise attempt")
        [request] = receiver.received("/apprise")

    assert outcome.ok
    text = json.loads(request.body)["message"]
    assert text == "BUY BTC USDT @ 60000.5 · sma_cross 9/21 · 1m · 16:42 UTC\nline one  FAKE: SELL[2Jdone end"
    assert text.count("\n") == 1 and not any(ch < " " and ch != "\n" for ch in text)
