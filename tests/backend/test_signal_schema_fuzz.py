"""Property-based fuzzing of the pure boundary checks: channel messages, signal objects, connect auth parameters."""

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from backend.signal_schema import InvalidSignal, parse_signal, valid_symbol, validate_signal
from backend.web.auth import token_ok
from backend.web.params import MAX_SYMBOLS, BadRequest, parse_since, parse_symbols
from tests.fuzz_strategies import (
    ANY_CHAR,
    JSON_VALUES,
    MESSAGES,
    PY_SIGNALS,
    PY_VALUES,
    SURROGATES,
    TEXT,
    assert_contract,
    deep_values,
    signal_dicts,
)

MAX_BYTES = 65536


@given(MESSAGES, st.one_of(st.just(MAX_BYTES), st.integers(0, 2 * MAX_BYTES)))
@example(b'{"type":"BUY","price":1' + b"0" * 400 + b"}", MAX_BYTES)
@example(b'{"type":"SELL","price":1e999}', MAX_BYTES)
@example(b'{"type":"BUY","price":1,"x":"\\ud800"}', MAX_BYTES)
@example(b'{"type":"BUY","price":1,"x":' + b"[" * 31 + b"]" * 31 + b"}", MAX_BYTES)
@example(b'{"type":"BUY","price":1,"x":' + b"[" * 32 + b"]" * 32 + b"}", MAX_BYTES)
def test_parse_signal_accepts_only_what_socketio_can_send(raw, max_bytes):
    for message in (raw, raw.decode("utf-8", "surrogateescape")):
        try:
            signal = parse_signal(message, max_bytes)
        except InvalidSignal:
            continue
        assert_contract(signal)
        assert len(raw) <= max_bytes


@given(st.text(st.one_of(ANY_CHAR, SURROGATES), max_size=200))
def test_parse_signal_of_any_text_is_a_signal_or_invalid(text):
    try:
        assert_contract(parse_signal(text, MAX_BYTES))
    except InvalidSignal:
        pass


@given(st.one_of(PY_SIGNALS, PY_VALUES, JSON_VALUES))
@example({"type": "BUY", "price": 10**400})
@example({"type": "BUY", "price": 1, "seq": True})
def test_validate_signal_of_any_object_returns_it_or_is_invalid(value):
    try:
        result = validate_signal(value)
    except InvalidSignal:
        return
    assert result is value
    assert_contract(result)


@given(st.one_of(signal_dicts(), PY_SIGNALS), st.booleans())
def test_publisher_check_refuses_what_the_channel_check_refuses(signal, ascii_only):
    try:
        validate_signal(signal)
    except InvalidSignal:
        return
    # The publisher sends exactly this encoding (backend/publisher.py); the relay must accept it unchanged.
    encoded = json.dumps(signal, separators=(",", ":"), ensure_ascii=ascii_only, allow_nan=False)
    assert parse_signal(encoded.encode(), MAX_BYTES * 1024) == signal


# python-socketio's decoder refuses integers of over 100 characters: such a signal must never be relayed.
@pytest.mark.parametrize(
    "raw",
    [b'{"type":"BUY","price":1,"x":' + b"9" * 101 + b"}", b'{"type":"BUY","price":1' + b"0" * 100 + b"}"],
    ids=["field", "price"],
)
def test_the_relay_refuses_what_python_clients_cannot_decode(raw):
    with pytest.raises(InvalidSignal, match="over 64 digits"):
        parse_signal(raw, MAX_BYTES)


# Integers beyond str()'s 4,300 digits: refused with InvalidSignal, and its message still builds.
@pytest.mark.parametrize(
    "signal",
    [{"type": "BUY", "price": 1, "big": 10**4300}, {"type": 10**4300, "price": 1}],
    ids=["accepted", "message"],
)
def test_validate_signal_of_an_int_too_long_for_str_is_invalid(signal):
    with pytest.raises(InvalidSignal):
        validate_signal(signal)


@given(
    st.one_of(
        JSON_VALUES,
        TEXT,
        st.from_regex(r"\s*[+-]?[0-9_]{0,30}\s*", fullmatch=True),
        st.sampled_from(["1" * 5000, "١٢٣", "0x10", "1e3", float("inf"), float("-inf")]),
    )
)
@example(float("inf"))
def test_parse_since_is_a_cursor_or_bad_request(value):
    try:
        since = parse_since(value)
    except BadRequest:
        return
    assert since is None or (type(since) is int and since >= 0)


SYMBOL_LISTS = st.one_of(
    JSON_VALUES,
    TEXT,
    st.lists(st.one_of(TEXT, st.sampled_from(["btcusdt", " ETH ", ""])), max_size=8),
    st.builds(lambda n, odd: [f"S{i}" for i in range(n)] + odd, st.integers(150, 260), st.lists(TEXT, max_size=2)),
    deep_values(TEXT),
)


@given(st.one_of(SYMBOL_LISTS, st.lists(TEXT, max_size=4).map(tuple)))
def test_parse_symbols_is_a_filter_or_bad_request(value):
    try:
        symbols = parse_symbols(value)
    except BadRequest:
        return
    assert symbols is None or (isinstance(symbols, frozenset) and 0 < len(symbols) <= MAX_SYMBOLS)
    for symbol in symbols or ():
        assert valid_symbol(symbol)
        symbol.encode("utf-8")


ASCII_TOKENS = st.lists(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12), max_size=3
).map(tuple)


@given(st.one_of(TEXT, JSON_VALUES, st.text(SURROGATES, min_size=1, max_size=4)), ASCII_TOKENS, st.booleans())
def test_token_ok_is_a_bool_and_exact(presented, tokens, present_a_real_one):
    if present_a_real_one and tokens:
        presented = tokens[-1]
    ok = token_ok(presented, tokens)
    assert ok is (not tokens or presented in tokens)
