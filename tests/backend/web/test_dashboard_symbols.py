"""The dashboard in headless Chromium against a real web process: every symbol the contract allows can be
filtered on, and an unnumbered message carrying a real signal's id hides nothing."""

import json

import pytest
from playwright.sync_api import expect

from harness.redis import redis_cli_publish
from tests.backend.web.test_dashboard import LIVE_S, row_keys, rows, signal

pytestmark = pytest.mark.browser


def test_an_unnumbered_message_with_a_real_id_hides_no_numbered_signal(web, page, publisher, redis_server):
    page.goto(web.url)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    real = signal("BTCUSDT", "BUY", 60100.5, minute=1)  # its id is predictable: symbol, strategy, bar, type
    forged = {"type": "SELL", "price": 1, "symbol": "BTCUSDT", "id": real["id"]}  # straight on the channel

    redis_cli_publish(redis_server, json.dumps(forged))
    expect(rows(page)).to_have_count(1, timeout=LIVE_S)
    stored = publisher.publish_signal(real)
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)
    redis_cli_publish(redis_server, json.dumps(forged))  # unnumbered copies are still one row
    publisher.publish_signal(signal("ETHUSDT", "SELL", 3050.5, minute=2))

    expect(rows(page)).to_have_count(3, timeout=LIVE_S)
    assert f"s:{stored['epoch']}:{stored['seq']}" in row_keys(page)
    assert row_keys(page).count(f"u:{real['id']}") == 1


@pytest.mark.parametrize("typed", ["btc/usd", "XBT:USD", "btc-perp", "BRK.B", "ETH_USDT"])
def test_the_symbol_filter_takes_every_symbol_of_the_contract(web, page, publisher, typed):
    symbol = typed.upper()
    publisher.publish_signal(signal(symbol, "BUY", 100.5, minute=1))
    publisher.publish_signal(signal("ETHUSDT", "BUY", 3000, minute=1))
    page.goto(web.url)
    expect(rows(page)).to_have_count(2)

    page.locator("#symbol-input").fill(typed)
    page.locator("#symbol-input").press("Enter")

    expect(page.get_by_label(symbol, exact=True)).to_be_checked()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first.locator('td[data-label="Symbol"]')).to_contain_text(symbol)
    expect(page.locator("#alert")).to_be_hidden()
    publisher.publish_signal(signal(symbol, "SELL", 101, minute=2))
    publisher.publish_signal(signal("ETHUSDT", "SELL", 3100, minute=2))
    expect(rows(page)).to_have_count(2, timeout=LIVE_S)
    expect(rows(page).first).to_contain_text("101")


def test_the_symbol_filter_refuses_what_the_contract_does_not_allow(web, page):
    page.goto(web.url)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")

    page.locator("#symbol-input").fill("/BTC")  # must start with a letter or digit
    page.locator("#symbol-input").press("Enter")

    assert page.locator("#symbol-input").evaluate("input => input.validity.patternMismatch")
    expect(page.locator("#symbol-list input[type=checkbox]")).to_have_count(0)
