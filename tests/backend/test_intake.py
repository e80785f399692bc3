"""normalize_signal's ids and bar_time bound, as pure code: an outside id comes only from what the sender gave,
always under `ext:`, which no scan id can start with (docs/architecture.md, invariant 10)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.intake import FUTURE_TOLERANCE_S, normalize_signal
from backend.signal_schema import OUTSIDE_ID_PREFIX, SYMBOL_RE, InvalidSignal, signal_id, utc_iso
from tests.fuzz_strategies import TEXT

NOW_MS = 1795624920000  # 2026-11-25T16:42:00Z
FIVE = {"type": "buy", "symbol": "btcusdt", "strategy": "tv", "timeframe": "1m"} | {
    "bar_time": "2026-11-25T17:42:00+01:00"
}


def normalize(body: dict, **kwargs) -> dict:
    """BODY with a price, normalized at NOW_MS."""
    return normalize_signal({"price": 1, **body}, "webhook", now_ms=NOW_MS, **kwargs)


@given(st.from_regex(SYMBOL_RE, fullmatch=True), TEXT, TEXT, st.integers(), st.sampled_from(["BUY", "SELL"]))
def test_no_scan_id_starts_like_an_outside_one(symbol, strategy, timeframe, bar_ms, kind):
    assert not signal_id(symbol, strategy, timeframe, bar_ms, kind).startswith(OUTSIDE_ID_PREFIX)


LABELS = TEXT.filter(lambda text: 1 <= len(text) <= 256 and text.isprintable())


@given(st.one_of(LABELS, st.from_regex(SYMBOL_RE, fullmatch=True)))
def test_whatever_id_is_sent_the_stored_one_is_under_ext(sent):
    assert normalize({"type": "BUY", "id": sent})["id"] == OUTSIDE_ID_PREFIX + sent


def test_the_five_fields_sent_make_one_id_however_they_are_written():
    lower = normalize(FIVE)
    upper = normalize({**FIVE, "type": "BUY", "symbol": "BTCUSDT", "bar_time": "2026-11-25T16:42:00Z"})

    assert lower["id"] == upper["id"] == "ext:" + signal_id("BTCUSDT", "tv", "1m", NOW_MS, "BUY")


@pytest.mark.parametrize("missing", ["symbol", "strategy", "timeframe", "bar_time"])
def test_without_all_five_fields_each_signal_gets_an_id_of_its_own(missing):
    body = {name: value for name, value in FIVE.items() if name != missing}

    ids = {normalize(body)["id"] for _ in range(3)}

    assert len(ids) == 3 and all(i.startswith(OUTSIDE_ID_PREFIX) for i in ids)


def test_defaults_the_door_fills_in_never_make_an_id():
    defaults = {"symbol": "BTCUSDT", "strategy": "manual", "timeframe": "manual", "bar_time": "2026-11-25T16:42:00Z"}

    first, second = (normalize({"type": "BUY"}, defaults=defaults) for _ in range(2))
    given_symbol = normalize({"type": "BUY", "symbol": "ethusdt"}, defaults=defaults)

    assert first["id"] != second["id"]
    assert {k: first[k] for k in defaults} == defaults and given_symbol["symbol"] == "ETHUSDT"


@pytest.mark.parametrize(
    "timeframe, allowed_s",
    [("1m", 60), ("4h", 4 * 3600), ("1w", 7 * 86400), ("60", FUTURE_TOLERANCE_S), (None, FUTURE_TOLERANCE_S)],
)
def test_bar_time_may_be_at_most_one_timeframe_ahead(timeframe, allowed_s):
    def ahead(ms: int) -> dict:
        body = {"type": "BUY", "bar_time": utc_iso(NOW_MS + ms, millis=True)}
        return body if timeframe is None else {**body, "timeframe": timeframe}

    assert normalize(ahead(allowed_s * 1000))["bar_time"] == utc_iso(NOW_MS + allowed_s * 1000)
    with pytest.raises(InvalidSignal, match=rf"is {allowed_s} s ahead of this server's clock; .*{allowed_s} s"):
        normalize(ahead(allowed_s * 1000 + 1))


def test_an_indicator_may_be_null_as_the_scan_sends_it_while_warming_up():
    signal = normalize({"type": "BUY", "indicators": {"sma_fast": None, "sma_slow": "60000.5", "rsi": 55}})

    assert signal["indicators"] == {"sma_fast": None, "sma_slow": 60000.5, "rsi": 55}
