"""Signal ids at the outside doors (POST /api/signals to a real web process, the `quantum-signals` command):
derived only from what the publisher gave, never one the scan produces, and bar_time bounded
(docs/architecture.md, HTTP and invariant 10)."""

import time

import pytest
import requests

from backend import history
from backend.signal_schema import SCHEMA_VERSION, signal_id, utc_iso
from harness.crowd import from_processes, publish_by_cli, publish_by_http
from harness.polling import wait_until

TOKEN = "ids-7c2e91"
SCAN_STRATEGY = "sma_cross:fast=9,slow=21"
MINUTE_MS = 60_000


@pytest.fixture
def intake_web(start_web):
    """A web process taking published signals with TOKEN, its limits out of the way of hundreds of posts."""
    return start_web(SIGNALS_PUBLISH_TOKEN=TOKEN, PUBLISH_RATE_LIMIT="1000000/minute", HTTP_RATE_LIMIT="1000000/second")


def post(web, body: dict) -> requests.Response:
    """POST BODY as JSON to WEB's /api/signals with TOKEN."""
    return requests.post(f"{web.url}/api/signals", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def scan_signal(kind: str, bar_ms: int, price: float) -> dict:
    """The signal the scan (tasks/scanner.make_signal) publishes for KIND on the 1m BTCUSDT bar opened at BAR_MS."""
    return {
        "v": SCHEMA_VERSION,
        "id": signal_id("BTCUSDT", SCAN_STRATEGY, "1m", bar_ms, kind),
        "type": kind,
        "price": price,
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "strategy": SCAN_STRATEGY,
        "bar_time": utc_iso(bar_ms),
        "source": "binance",
    }


def assert_200_distinct(outcomes, redis_client, ok_status: int) -> None:
    """200 publishes, each answered OK with a signal of its own, and 200 signals in history."""
    seqs = [stored["seq"] for _, stored, _ in outcomes if stored]
    statuses = sorted({status for status, _, _ in outcomes})
    assert len(outcomes) == 200 and len(set(seqs)) == 200, f"{len(set(seqs))} distinct seqs of 200; statuses {statuses}"
    assert statuses == [ok_status], [error for status, _, error in outcomes if status != ok_status][:3]
    assert len({signal["id"] for signal in history.read_range(redis_client, 0, count=1000)}) == 200


def test_200_cli_publishes_from_8_processes_at_once_are_200_signals(base_env, redis_client):
    outcomes = from_processes(publish_by_cli, 8, 25, {"REDIS_URL": base_env["REDIS_URL"]})

    assert_200_distinct(outcomes, redis_client, ok_status=0)


def test_200_posts_without_ids_from_8_processes_at_once_are_200_signals(intake_web, redis_client):
    outcomes = from_processes(publish_by_http, 8, 25, intake_web.url, TOKEN)

    assert_200_distinct(outcomes, redis_client, ok_status=201)


@pytest.mark.parametrize("kind", ["BUY", "SELL"])
def test_a_post_cannot_take_the_scans_next_signals(intake_web, connect, publisher, kind):
    client = connect(intake_web.url)
    wait_until(lambda: client.of("welcome"), message="welcome")
    forming = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS  # the bar still open: the scan publishes it next
    following = forming + MINUTE_MS

    # The scan's ids are deterministic: one sent as the id, the other derived from the five fields sent.
    by_id = post(intake_web, {"type": kind, "price": 1, "id": scan_signal(kind, following, 1)["id"]})
    by_fields = post(
        intake_web,
        {"type": kind, "price": 2, "symbol": "BTCUSDT", "strategy": SCAN_STRATEGY, "timeframe": "1m",
         "bar_time": utc_iso(forming)},
    )  # fmt: skip
    # The scan's publisher (tasks/scanner.py calls publish_if_new) then publishes the real ones.
    real = [
        publisher.publish_if_new(scan_signal(kind, bar, 60_000.0 + n)) for n, bar in enumerate((forming, following))
    ]

    assert (by_id.status_code, by_fields.status_code) == (201, 201), (by_id.text, by_fields.text)
    assert None not in real, "a scan signal was dropped as a duplicate of a forged one"
    assert [signal["id"] for signal in real] == [scan_signal(kind, bar, 0)["id"] for bar in (forming, following)]
    assert [signal["seq"] for signal in real] == [3, 4] and [signal["price"] for signal in real] == [60_000.0, 60_001.0]
    forged = [by_id.json(), by_fields.json()]
    assert not {signal["id"] for signal in forged} & {signal["id"] for signal in real}
    assert client.wait_signals(4) == [*forged, *real]
    stored = requests.get(intake_web.url + "/api/signals", timeout=5).json()["signals"]
    assert [signal for signal in stored if signal["source"] == "binance"] == real


def test_a_bar_time_more_than_one_timeframe_ahead_is_400_naming_the_bound(intake_web, redis_client):
    now_ms = int(time.time() * 1000)

    def send(timeframe: str | None, ahead_s: int) -> requests.Response:
        body = {"type": "BUY", "price": 1, "bar_time": utc_iso(now_ms + ahead_s * 1000)}
        return post(intake_web, body if timeframe is None else {**body, "timeframe": timeframe})

    far_1m, far_tv, far_none = send("1m", 300), send("60", 300), send(None, 300)
    near_1m, near_1h = send("1m", 30), send("1h", 1800)

    assert (far_1m.status_code, far_tv.status_code, far_none.status_code) == (400, 400, 400)
    assert "one timeframe (1m: 60 s)" in far_1m.json()["error"], far_1m.json()
    assert 'timeframe "60" is not one this server knows' in far_tv.json()["error"], far_tv.json()
    assert "no timeframe" in far_none.json()["error"] and "60 s" in far_none.json()["error"], far_none.json()
    assert (near_1m.status_code, near_1h.status_code) == (201, 201), (near_1m.text, near_1h.text)
    assert [s["seq"] for s in history.read_range(redis_client, 0)] == [1, 2]


def test_a_retry_with_the_same_id_or_the_same_five_fields_is_200_with_the_stored_signal(intake_web, redis_client):
    given_id = {"type": "SELL", "price": 5, "id": "order-17"}
    five = {"type": "buy", "price": "2", "symbol": "ethusdt", "strategy": "tv", "timeframe": "1h",
            "bar_time": "2026-11-25T16:00:00Z"}  # fmt: skip
    four = {"type": "BUY", "price": 3, "symbol": "ETHUSDT", "timeframe": "1h", "bar_time": "2026-11-25T16:00:00Z"}

    answers = [post(intake_web, body) for body in (given_id, {**given_id, "price": 6}, five, five, four, four)]

    assert [answer.status_code for answer in answers] == [201, 200, 201, 200, 201, 201]
    assert answers[1].json() == answers[0].json() and answers[3].json() == answers[2].json()
    ids = [answer.json()["id"] for answer in answers]
    assert ids[0] == "ext:order-17"
    assert ids[2] == "ext:" + signal_id("ETHUSDT", "tv", "1h", 1795622400000, "BUY")
    assert ids[4] != ids[5] and ids[4].startswith("ext:") and ids[5].startswith("ext:")  # four fields: no id derived
    assert [s["seq"] for s in history.read_range(redis_client, 0)] == [1, 2, 3, 4]
