"""/api/stats, /api/outcomes and /api/signals of a real web process over what a real scan kept: signals POSTed
with hindsight, outside signals named as the scan's strategies, the cap on stats entries, and the cost of a read
of a symbol with no signal."""

import pytest
import requests
from playwright.sync_api import expect

from backend import history
from backend.signal_schema import utc_iso
from harness.bars import open_ms, replay, scan, start_now, wave_closes, write_bars_csv
from tests.backend.test_history import command_calls

TOKEN = "publish-5e1d"
SMA = "sma_cross:fast=3,slow=5"
LATER = 2**42  # a scan's clock far ahead: every bar of a file that starts now counts as closed


def post(web, body: dict) -> dict:
    """POST BODY to /api/signals with the publish token; the stored signal."""
    answer = requests.post(
        web.url + "/api/signals", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def get(web, path: str) -> dict:
    """GET PATH of WEB, as JSON."""
    answer = requests.get(web.url + path, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_signals_posted_on_bars_whose_outcome_is_known_move_no_stats(tmp_path, start_web, publisher, redis_client):
    web = start_web(SIGNALS_PUBLISH_TOKEN=TOKEN)
    closes = wave_closes(30, 170)
    scanner = replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, SMA)
    before = get(web, "/api/stats")
    assert before["stats"][0]["strategy"] == SMA and before["stats"][0]["outcomes"]["5"]["n"] >= 5

    posted = []
    for i in range(120, 160):  # each a hit at +5, in hindsight
        kind = "BUY" if closes[i + 5] > closes[i] else "SELL"
        body = {"type": kind, "price": closes[i], "symbol": "BTCUSDT", "timeframe": "1m", "strategy": SMA}
        posted.append(post(web, body | {"bar_time": utc_iso(open_ms(i)), "source": "csv", "id": f"h{i}"}))
    scanner.keeper.route()  # as a worker's keeper does every second
    scan(scanner)

    after = get(web, "/api/stats")
    outcomes = get(web, "/api/outcomes?symbol=BTCUSDT&limit=40")["outcomes"]
    assert after == before
    assert [(o["seq"], o["id"]) for o in outcomes] == [(s["seq"], s["id"]) for s in posted]
    assert all(set(o) == {"epoch", "seq", "id", "unscored"} for o in outcomes)
    assert outcomes[0]["unscored"].startswith("late: emitted after its +1 bar closed")


def outside_signals_over_the_cap(tmp_path, start_web, publisher, redis_client):
    """A web process with STATS_MAX_ENTRIES=2 and three outside signals on time, of three names, scored by the
    scan's keeper (one of the scan's strategy name, SMA); the web process."""
    web = start_web(SIGNALS_PUBLISH_TOKEN=TOKEN, STATS_MAX_ENTRIES="2")
    start = start_now(20)
    scanner = replay(write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 70), start), publisher, redis_client, SMA)
    scanner.keeper.max_entries = 2
    bar = {"symbol": "BTCUSDT", "timeframe": "1m", "bar_time": utc_iso(open_ms(20, start))}
    post(web, {"type": "BUY", "price": 1, "strategy": SMA, "id": "tv-1"} | bar)  # source: webhook
    for name in ("other", "third"):
        post(web, {"type": "SELL", "price": 1, "strategy": name, "id": name} | bar)
    for _ in range(3):
        scan(scanner, now_ms=LATER)
    return web


def test_stats_of_outside_signals_are_under_their_source_and_the_cap_is_reported(
    tmp_path, start_web, publisher, redis_client
):
    web = outside_signals_over_the_cap(tmp_path, start_web, publisher, redis_client)

    body = get(web, "/api/stats")

    assert [(e["strategy"], e.get("source"), e["signals"]) for e in body["stats"]] == [
        ("other", "webhook", 1),
        (SMA, "webhook", 1),
    ]
    assert body["max_entries"] == 2 and body["not_counted"] == 1
    scored = get(web, "/api/outcomes?symbol=BTCUSDT")["outcomes"]
    assert {o["id"] for o in scored if o.get("h") == 1} == {"ext:tv-1", "ext:other", "ext:third"}  # scored all the same


@pytest.mark.browser
def test_the_stats_panel_names_the_source_and_says_when_stats_are_full(
    tmp_path, start_web, publisher, redis_client, page
):
    web = outside_signals_over_the_cap(tmp_path, start_web, publisher, redis_client)

    page.goto(web.url)

    expect(page.locator("#stats .stats-full")).to_contain_text(
        "Stats are full (2 entries, STATS_MAX_ENTRIES): 1 signal"
    )
    outside = page.locator(f'#stats .stats-table[data-strategy="{SMA}"][data-source="webhook"]')
    expect(outside.locator("caption")).to_contain_text("outside signals, source webhook")


def test_a_symbol_with_no_signal_reads_no_history_entry(web, publisher, redis_client):
    for i in range(2000):
        publisher.publish_signal({"type": "BUY", "price": 1.0 + i, "symbol": "BTCUSDT"})
    assert get(web, "/api/signals?symbol=BTCUSDT&limit=1")["signals"][0]["seq"] == 2000
    redis_client.config_resetstat()

    for path in ("/api/signals?symbol=NOPEUSDT&limit=1000", "/api/outcomes?symbol=NOPEUSDT&limit=1000"):
        assert get(web, path)[path.split("?")[0].rsplit("/", 1)[1]] == []

    assert command_calls(redis_client, "xrange", "xrevrange", "xread", "xreadgroup") == 0
    assert history.cursor(redis_client)[1] == 2000
