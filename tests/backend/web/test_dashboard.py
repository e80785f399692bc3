"""The dashboard at / in headless Chromium against a real web process: live rows, filter, recovery, token."""

import pytest
from playwright.sync_api import expect

from harness.redis import redis_cli_publish

pytestmark = pytest.mark.browser

LIVE_S = 2000  # ms: a published signal must be on screen within 2 s
CSP_MARK = "Content Security Policy"
# Chromium logs most violations itself; the listener also catches those it reports only as events.
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`Content Security Policy violation: ${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`));"""


@pytest.fixture(autouse=True)
def csp_violations(page):
    """Every dashboard test also fails when the page breaks its Content Security Policy."""
    seen: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", lambda message: seen.append(message.text) if CSP_MARK in message.text else None)
    yield seen
    assert not seen, f"Content Security Policy violations in the dashboard: {seen}"


def signal(symbol: str, kind: str, price: float, minute: int, strategy: str = "sma_cross:fast=9,slow=21") -> dict:
    """A signal as the project's scan would publish it."""
    bar_time = f"2026-11-25T10:{minute:02d}:00Z"
    return {
        "type": kind,
        "price": price,
        "symbol": symbol,
        "timeframe": "1m",
        "strategy": strategy,
        "bar_time": bar_time,
        "id": f"{symbol}:{strategy}:1m:{bar_time}:{kind}",
        "reason": f"test {kind}",
    }


def rows(page):
    """The signal table's body rows, newest first."""
    return page.locator("#signal-rows tr")


def row_keys(page) -> list[str]:
    """The dedupe key of every row, top to bottom."""
    return rows(page).evaluate_all("trs => trs.map(tr => tr.dataset.key)")


def test_history_then_live_signals_newest_first(web, page, publisher, redis_server):
    publisher.publish_signal(signal("BTCUSDT", "BUY", 60100.5, minute=1))
    page.goto(web.url)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(rows(page)).to_have_count(1)  # from /api/signals

    redis_cli_publish(redis_server, '{"type":"BUY","price":60000}')
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)
    expect(rows(page).first).to_contain_text("60,000")

    publisher.publish_signal(signal("ETHUSDT", "SELL", 3050.5, minute=2))
    expect(rows(page)).to_have_count(3, timeout=LIVE_S)
    newest = rows(page).first
    expect(newest.locator('td[data-label="Symbol"]')).to_contain_text("ETHUSDT")
    expect(newest.locator(".badge.sell")).to_have_text("SELL")
    expect(newest.locator('td[data-label="Price"]')).to_have_text("3,050.5")
    expect(newest.locator('td[data-label="Strategy"]')).to_have_text("sma_cross:fast=9,slow=21")
    expect(page.locator("#chart canvas").first).to_be_visible()
    expect(page.locator("#chart")).to_have_attribute("data-symbol", "BTCUSDT")  # the scan's first symbol


def test_symbol_filter_streams_only_the_ticked_symbols(web, page, publisher):
    publisher.publish_signal(signal("BTCUSDT", "BUY", 60100.5, minute=1))
    publisher.publish_signal(signal("ETHUSDT", "BUY", 3000, minute=1))
    page.goto(web.url)
    expect(rows(page)).to_have_count(2)

    page.get_by_label("ETHUSDT", exact=True).check()
    expect(rows(page)).to_have_count(1)
    expect(page.locator("#chart")).to_have_attribute("data-symbol", "ETHUSDT")  # the chart follows the filter
    publisher.publish_signal(signal("BTCUSDT", "SELL", 60500, minute=2))
    publisher.publish_signal(signal("ETHUSDT", "SELL", 3100, minute=2))
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)
    expect(rows(page).first).to_contain_text("3,100")

    page.get_by_role("button", name="All").click()
    expect(rows(page)).to_have_count(4)  # what the filter kept out comes back from history


def test_recovers_signals_missed_while_the_web_process_was_down(web, page, publisher, restart_web):
    published = [publisher.publish_signal(signal("BTCUSDT", "BUY", 60000 + 1, minute=1))]
    page.goto(web.url)
    expect(rows(page)).to_have_count(1)
    published.append(publisher.publish_signal(signal("ETHUSDT", "SELL", 3002, minute=2)))
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)

    web.kill()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    published += [
        publisher.publish_signal(signal("BTCUSDT", "SELL", 60003, minute=3)),
        publisher.publish_signal(signal("SOLUSDT", "BUY", 144, minute=4)),
    ]
    restart_web(web)

    expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(rows(page)).to_have_count(4)
    published.append(publisher.publish_signal(signal("ETHUSDT", "BUY", 3005, minute=5)))
    expect(rows(page)).to_have_count(5, timeout=LIVE_S)
    assert row_keys(page) == [f"s:{s['epoch']}:{s['seq']}" for s in reversed(published)]


def test_a_new_redis_epoch_is_not_mistaken_for_duplicates(web, page, publisher, redis_client):
    first = publisher.publish_signal(signal("BTCUSDT", "BUY", 60100.5, minute=1))
    page.goto(web.url)
    expect(rows(page)).to_have_count(1)

    redis_client.flushall()  # Redis lost its data: the next signal opens a new epoch at seq 1 again
    second = publisher.publish_signal(signal("ETHUSDT", "SELL", 3050.5, minute=2))

    assert second["seq"] == first["seq"] == 1 and second["epoch"] != first["epoch"]
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)
    assert row_keys(page) == [f"s:{s['epoch']}:{s['seq']}" for s in (second, first)]


def test_token_required_shows_the_error_until_a_valid_token_is_entered(start_web, page, publisher):
    web = start_web(SIGNALS_AUTH_TOKEN="s3cret")
    publisher.publish_signal(signal("BTCUSDT", "BUY", 60100.5, minute=1))
    page.goto(web.url)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("requires an access token")
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    expect(page.locator("#status")).to_contain_text("unauthorized")

    page.get_by_label("Access token").fill("wrong")
    page.get_by_role("button", name="Connect").click()
    expect(alert).to_contain_text("not valid")
    expect(rows(page)).to_have_count(0)

    page.get_by_label("Access token").fill("s3cret")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(alert).to_be_hidden()
    expect(rows(page)).to_have_count(1)
    publisher.publish_signal(signal("ETHUSDT", "SELL", 3050.5, minute=2))
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)

    page.reload()  # the token is remembered
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(rows(page)).to_have_count(2)


def test_dashboard_runs_under_its_content_security_policy(web, page, publisher, csp_violations):
    publisher.publish_signal(signal("BTCUSDT", "BUY", 60100.5, minute=1))
    answer = page.goto(web.url)
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(page.locator("#chart canvas").first).to_be_visible()
    expect(page.locator("#tv-attr-logo")).to_be_attached()  # the chart's own <style>, allowed by its hash
    assert not csp_violations

    # The policy is enforced and the check sees breaches: an injected inline script is refused and reported.
    with page.expect_console_message(lambda message: CSP_MARK in message.text):
        page.evaluate("""() => { const s = document.createElement("script");
                                 s.textContent = "window.injected = true"; document.body.append(s); }""")
    assert csp_violations and page.evaluate("() => window.injected") is None
    csp_violations.clear()
