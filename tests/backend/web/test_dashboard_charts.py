"""Dashboard v2 in headless Chromium against a real stack (web, Celery worker and beat on the simulated market with
1 s bars): candles, indicator lines and markers as the API serves them, live markers and rows, outcomes filling
in as bars close, the stats panel, the symbol picker and a phone's viewport."""

import time
from datetime import UTC, datetime

import pytest
import requests
from playwright.sync_api import expect

from harness.polling import wait_until
from tests.backend.web.test_dashboard import REPORT_VIOLATIONS

pytestmark = pytest.mark.browser

LIVE_MS = 2000  # a published signal must be on screen within 2 s
SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"
STRATEGIES = "sma_cross:fast=3,slow=8;macd:fast=3,slow=6,signal=2"
MACD = "macd:fast=3,slow=6,signal=2"
STACK = {
    "MARKET_SOURCE": "simulated",
    "TIMEFRAME": "1s",
    "SCAN_INTERVAL": "1",
    "SYMBOLS": SYMBOLS,
    "STRATEGIES": STRATEGIES,
    "OUTCOME_HORIZONS": "1,2,20",
}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def console_errors(page):
    """Every console error of the page (a failed request, a CSP violation included); the test fails on any."""
    errors: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield errors
    assert not errors, f"console errors in the dashboard: {errors}"


@pytest.fixture
def start_stack(start_web, start_celery):
    """Factory: web, worker and beat on the simulated market (STACK with ENV over it), once 30 bars are kept."""

    def start(**env):
        env = {**STACK, **env}
        start_celery("worker", **env)
        start_celery("beat", **env)
        web = start_web(**env)
        kept = lambda: len(candles(web, "BTCUSDT", env["TIMEFRAME"])["candles"]) >= 30  # noqa: E731
        wait_until(kept, 60, 0.2, "30 closed bars of BTCUSDT kept")
        return web

    return start


@pytest.fixture
def stack(start_stack):
    """The stack with 1 s bars."""
    return start_stack()


def candles(web, symbol: str, timeframe: str = "1s") -> dict:
    """GET /api/candles of SYMBOL ({"candles": []} while the scan has not kept any)."""
    answer = requests.get(f"{web.url}/api/candles", params={"symbol": symbol, "timeframe": timeframe}, timeout=5)
    return answer.json() if answer.status_code == 200 else {"candles": []}


def outcomes(web, signal: dict) -> list[dict]:
    """What GET /api/outcomes holds of SIGNAL."""
    answer = requests.get(f"{web.url}/api/outcomes", params={"symbol": signal["symbol"]}, timeout=5).json()
    return [o for o in answer["outcomes"] if o["seq"] == signal["seq"]]


def drawn(page) -> dict:
    """What the chart draws, through its read-only accessor window.qsChart."""
    return page.evaluate("() => window.qsChart.snapshot()")


def candle_answers(page) -> list[int]:
    """The HTTP status of each /api/candles request of the page so far (Resource Timing), in order."""
    return page.evaluate("""() => performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("/api/candles?")).map((e) => e.responseStatus)""")


def iso(ms: int) -> str:
    """A bar_time: epoch ms as ISO-8601 UTC with Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bar_s(signal: dict) -> int:
    """A signal's bar time in epoch seconds, as the chart keeps it."""
    return int(datetime.fromisoformat(signal["bar_time"]).timestamp())


def a_signal(symbol: str, kind: str, bar_ms: int, price: float) -> dict:
    """An outside signal on a scanned bar (HTTP intake's shape): it is charted, listed and scored like any other."""
    return {
        "type": kind,
        "price": price,
        "symbol": symbol,
        "timeframe": "1s",
        "strategy": "test:live",
        "bar_time": iso(bar_ms),
        "id": f"{symbol}:test:live:1s:{bar_ms}:{kind}",
        "reason": f"test {kind}",
        "indicators": {"close": price},
    }


def open_bar_ms() -> int:
    """The 1 s bar open now: a signal on it is on time (scored), as one on a kept bar may not be (its +1 bar may
    have closed already: then it is marked late and not scored)."""
    return int(time.time()) * 1000


def row(page, signal: dict):
    """The table row of a stored SIGNAL."""
    return page.locator(f'#signal-rows tr[data-key="s:{signal["epoch"]}:{signal["seq"]}"]')


def test_chart_draws_the_candles_lines_and_markers_the_api_serves(stack, page, publisher, console_errors):
    signals = [
        publisher.publish_signal(a_signal("BTCUSDT", kind, bar["time"], bar["close"]))
        for kind, bar in zip(("BUY", "SELL"), candles(stack, "BTCUSDT")["candles"][-20::10])
    ]
    page.goto(stack.url)
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-symbol", "BTCUSDT")
    expect(chart).to_have_attribute("data-state", "candles")

    shown = drawn(page)
    served = candles(stack, "BTCUSDT")
    by_time = {bar["time"] // 1000: bar for bar in served["candles"]}
    common = [bar for bar in shown["candles"] if bar["time"] in by_time]
    assert len(shown["candles"]) >= 30 and len(common) >= len(shown["candles"]) - 5  # bars keep closing meanwhile
    for bar in common:
        want = by_time[bar["time"]]
        assert [bar[k] for k in ("open", "high", "low", "close")] == [want[k] for k in ("open", "high", "low", "close")]

    # Moving averages over the candles, the MACD's three series in one pane below.
    assert shown["panes"] == 2
    assert {(line["spec"], line["name"]): line["pane"] for line in shown["lines"]} == {
        (spec, name): 0 if served["panes"][spec][name] == "price" else 1
        for spec, series in served["indicators"].items()
        for name in series
    }
    assert {line["spec"] for line in shown["lines"] if line["pane"] == 1} == {MACD}
    assert all(line["points"] >= len(shown["candles"]) - 10 for line in shown["lines"])  # warm-up bars are blank

    # Markers sit at the bar times of the pair's signals (the scan's and ours), and a click shows the details.
    def markers_match_signals():
        listed = requests.get(f"{stack.url}/api/signals", params={"symbol": "BTCUSDT"}, timeout=5).json()["signals"]
        now = drawn(page)
        first, last = now["candles"][0]["time"], now["candles"][-1]["time"]
        in_view = {bar_s(s) for s in listed if first <= bar_s(s) <= last}
        return {m["time"] for m in now["markers"]} == in_view and in_view

    # Signals keep coming (1 s bars): the page and the API agree between two of them.
    markers = wait_until(markers_match_signals, 10, 0.1, "a marker at the bar time of each signal in view, no other")
    assert {bar_s(s) for s in signals} <= markers

    details = page.locator("#details")
    x = page.evaluate("(t) => window.qsChart.xOf(t)", bar_s(signals[0]))
    page.locator("#chart").click(position={"x": x, "y": 60})  # on the marker's bar, in the price pane
    expect(details).to_have_attribute("data-key", f"s:{signals[0]['epoch']}:{signals[0]['seq']}")
    expect(details).to_contain_text("test BUY")

    row(page, signals[1]).click()
    expect(details).to_be_visible()
    expect(details).to_have_attribute("data-key", f"s:{signals[1]['epoch']}:{signals[1]['seq']}")
    expect(details).to_contain_text("test SELL")
    expect(details.locator("#details-indicators")).to_contain_text("close")

    # The chart follows the window: turned into a phone's width, nothing sticks out.
    page.set_viewport_size(PHONE)
    wait_until(lambda: page.locator("#chart canvas").first.bounding_box()["width"] < PHONE["width"], 5, 0.1, "resize")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]


def test_live_signal_adds_a_marker_and_a_row_then_its_outcomes_fill_in(stack, page, publisher, console_errors):
    page.goto(stack.url)
    expect(page.locator("#chart")).to_have_attribute("data-state", "candles")
    expect(page.locator("#stats .stats-table").first).to_be_visible(timeout=10_000)  # the scan's own strategies

    last = {"time": open_bar_ms(), "close": candles(stack, "BTCUSDT")["candles"][-1]["close"]}
    signal = publisher.publish_signal(a_signal("BTCUSDT", "BUY", last["time"], last["close"]))
    expect(row(page, signal)).to_have_count(1, timeout=LIVE_MS)
    # Its marker once its bar closed and was kept.
    wait_until(lambda: last["time"] // 1000 in {m["time"] for m in drawn(page)["markers"]}, 10, message="its marker")

    # +1 and +2 fill in as those bars close (the worker scores them, the relay sends signal_outcome); +20 waits.
    cells = row(page, signal).locator("td.outcome")
    expect(cells).to_have_count(3)
    expect(cells.nth(0)).not_to_have_class("num outcome pending", timeout=10_000)
    expect(cells.nth(1)).not_to_have_class("num outcome pending", timeout=10_000)
    expect(cells.nth(2)).to_have_text("…")
    closes = {bar["time"]: bar["close"] for bar in candles(stack, "BTCUSDT")["candles"]}
    for index, h in enumerate((1, 2)):
        expected = closes[last["time"] + h * 1000] / closes[last["time"]] - 1  # BUY: d = +1
        assert float(cells.nth(index).get_attribute("data-r")) == pytest.approx(expected, rel=1e-9, abs=1e-15)
        sign = "up" if expected > 0 else "down" if expected < 0 else "flat"
        expect(cells.nth(index)).to_have_class(f"num outcome {sign}")

    # The stats panel counts it under its strategy, refreshed as the outcomes arrived.
    stats = page.locator('#stats .stats-table[data-strategy="test:live"]')
    expect(stats.locator("caption .count")).to_have_text("1 signal")
    expect(stats.locator('tr[data-h="1"] td').first).to_have_text("1")


def test_candles_are_revalidated_by_etag_until_a_bar_closes(start_stack, page, console_errors):
    web = start_stack(TIMEFRAME="1m")  # one new bar a minute: the page's polls in between change nothing
    page.goto(web.url)
    expect(page.locator("#chart")).to_have_attribute("data-state", "candles")
    bars = drawn(page)["candles"]

    answers = wait_until(lambda: (a := candle_answers(page)).count(304) >= 2 and a, 15, 0.1, "two polls got 304")
    assert answers[0] == 200
    assert drawn(page)["candles"][-1]["time"] >= bars[-1]["time"]  # a 304 keeps what is drawn


def test_symbol_picker_filters_hundreds_of_symbols(start_web, page, console_errors):
    symbols = [f"C{i:03d}USDT" for i in range(500)] + ["ETHUSDT", "ETHBTC"]
    web = start_web(SYMBOLS=",".join(symbols))
    page.goto(web.url)
    picker = page.get_by_role("combobox", name="Chart symbol")
    options = page.locator("#chart-symbol-options [role=option]")
    picker.click()
    expect(options).to_have_count(50)  # the first 50, then "452 more: keep typing"
    expect(page.locator("#chart-symbol-options .more")).to_have_text("452 more: keep typing")

    picker.fill("eth")
    expect(options).to_have_text(["ETHBTC", "ETHUSDT"])
    picker.press("ArrowDown")
    picker.press("ArrowDown")
    picker.press("Enter")  # the keyboard picks the second
    expect(page.locator("#chart")).to_have_attribute("data-symbol", "ETHUSDT")

    picker.fill("C49")
    expect(options).to_have_count(10)
    options.filter(has_text="C499USDT").click()
    expect(page.locator("#chart")).to_have_attribute("data-symbol", "C499USDT")
    expect(picker).to_have_value("C499USDT")
    expect(page.locator("#chart-symbol-options")).to_be_hidden()
    console_errors.clear()  # the scan covers none of them here: /api/candles answers 404, which Chromium logs


def test_phone_viewport_keeps_the_page_within_the_screen(stack, browser, publisher):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.add_init_script(REPORT_VIOLATIONS)
    errors: list[str] = []
    phone.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        bar = candles(stack, "BTCUSDT")["candles"][-3]  # its +1 bar closed: marked late, not scored
        signal = publisher.publish_signal(a_signal("BTCUSDT", "SELL", bar["time"], bar["close"]))
        late = lambda: any(o.get("unscored") for o in outcomes(stack, signal))  # noqa: E731
        wait_until(late, 10, 0.1, "the signal marked unscored")
        phone.goto(stack.url)
        expect(phone.locator("#chart")).to_have_attribute("data-state", "candles")
        expect(row(phone, signal)).to_have_count(1)
        expect(row(phone, signal).locator("td.outcome").first).to_have_text("late")
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px phone"
        box = phone.locator("#chart").bounding_box()
        assert 300 <= box["width"] <= PHONE["width"]  # the chart fits the screen
        canvas = phone.locator("#chart canvas").first.bounding_box()
        assert canvas["width"] <= box["width"]
        row(phone, signal).click()
        expect(phone.locator("#details")).to_be_visible()
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()
    assert not errors, f"console errors on the phone: {errors}"


def test_stats_say_they_restarted_when_redis_lost_its_data(stack, page, publisher, redis_client):
    bar = {"time": open_bar_ms(), "close": 100.0}
    publisher.publish_signal(a_signal("BTCUSDT", "BUY", bar["time"], bar["close"]))
    page.goto(stack.url)
    stats = page.locator('#stats .stats-table[data-strategy="test:live"]')
    expect(stats.locator("caption .count")).to_have_text("1 signal", timeout=10_000)  # once the scan routed it
    expect(page.locator("#stats-note")).to_be_empty()

    redis_client.flushall()  # Redis lost its data: the next signal opens a new epoch, the counts start again
    publisher.publish_signal(a_signal("ETHUSDT", "SELL", bar["time"], 3_000))
    expect(page.locator("#stats-note")).to_contain_text("Stats restarted", timeout=10_000)
