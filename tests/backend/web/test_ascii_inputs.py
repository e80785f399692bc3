"""Case folding and digits at the boundary are ASCII's: `ſell` is no SELL, `1_0` and `١٢` are no integers.

Python's str.upper() maps U+017F (ſ) to S and int() takes underscores and every script's digits; the contract
takes neither. The parsers are checked here, then a real web process answers 400 naming what was wrong.
"""

from __future__ import annotations

import pytest
import requests

from backend.intake import normalize_signal
from backend.signal_schema import InvalidSignal, validate_signal
from backend.web.params import BadRequest, parse_int, parse_limit, parse_since, parse_symbol, parse_symbols

TOKEN = "ascii-publish-token"


@pytest.mark.parametrize("kind, stored", [("buy", "BUY"), ("Buy", "BUY"), ("sElL", "SELL")])
def test_a_type_in_any_ascii_case_is_normalized(kind, stored):
    assert normalize_signal({"type": kind, "price": 1}, "webhook")["type"] == stored


@pytest.mark.parametrize("kind", ["ſell", "ſELL", "buy\u0130", "ＢＵＹ"])
def test_a_type_that_only_unicode_case_folding_would_make_a_type_is_refused(kind):
    with pytest.raises(InvalidSignal, match='"type" must be "BUY" or "SELL"'):
        validate_signal(normalize_signal({"type": kind, "price": 1}, "webhook"))


@pytest.mark.parametrize("text", ["1_0", "١٢", "５", "+5", " 7", "7 ", "0x10", "1e3", "1.5", ""])
def test_integers_are_ascii_digits_only(text):
    if text == "":  # absent, as ever
        assert parse_since(text) is None
        return
    with pytest.raises(BadRequest, match=r"^since=.* is not an integer; write it in the digits 0-9 only$"):
        parse_since(text)


def test_ascii_integers_and_json_numbers_still_parse():
    assert (parse_since("0"), parse_since("42"), parse_limit("1000"), parse_int("n", 7, 0)) == (0, 42, 1000, 7)
    with pytest.raises(BadRequest, match="out of range"):
        parse_int("n", "-3", 0)


def test_symbols_fold_ascii_case_only():
    assert parse_symbol("btc/usd") == "BTC/USD"
    assert parse_symbols("btcusdt,eth-perp") == {"BTCUSDT", "ETH-PERP"}
    for text in ("ſol", "ſOL"):  # "ſol".upper() == "SOL"
        with pytest.raises(BadRequest):
            parse_symbol(text)
        with pytest.raises(BadRequest):
            parse_symbols(text)


def test_a_web_process_answers_400_naming_the_parameter_or_field(start_web):
    web = start_web(SIGNALS_PUBLISH_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    for query, name in (("since=1_0", "since"), ("limit=%D9%A1%D9%A2", "limit")):
        answer = requests.get(f"{web.url}/api/signals?{query}", timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith(f"{name}=") and "digits 0-9" in answer.json()["error"]

    refused = requests.post(f"{web.url}/api/signals", json={"type": "ſell", "price": 1}, headers=auth, timeout=10)
    assert refused.status_code == 400 and '"type" must be "BUY" or "SELL"' in refused.json()["error"]
    taken = requests.post(f"{web.url}/api/signals", json={"type": "Buy", "price": 1}, headers=auth, timeout=10)
    assert taken.status_code == 201 and taken.json()["type"] == "BUY"
