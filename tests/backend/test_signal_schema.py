"""The boundary check of channel messages."""

import pytest

from backend.signal_schema import InvalidSignal, parse_signal


def test_minimal_outside_signal_is_accepted():
    assert parse_signal(b'{"type":"BUY","price":60000}', 65536) == {"type": "BUY", "price": 60000}


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"nope", "not JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"price":1}', '"type" must be "BUY" or "SELL"'),
        (b'{"type":"buy","price":1}', '"type" must be "BUY" or "SELL"'),
        (b'{"type":"BUY"}', '"price" must be a JSON number'),
        (b'{"type":"BUY","price":"1"}', '"price" must be a JSON number'),
        (b'{"type":"BUY","price":true}', '"price" must be a JSON number'),
        (b'{"type":"BUY","price":-1}', "finite and > 0"),
        (b'{"type":"BUY","price":NaN}', "not JSON"),
        (b'{"type":"BUY","price":1e999}', "finite and > 0"),
        (b'{"type":"BUY","price":1,"symbol":5}', '"symbol" must be a string'),
        (b'{"type":"BUY","price":1,"seq":0}', '"seq" must be a positive integer'),
        (b"\xff{}", "not valid UTF-8"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    ],
)
def test_malformed_messages_say_what_is_wrong(raw, reason):
    with pytest.raises(InvalidSignal, match=reason):
        parse_signal(raw, 65536)


def test_oversized_message_is_rejected_before_parsing():
    with pytest.raises(InvalidSignal, match="exceeds MAX_SIGNAL_BYTES=100"):
        parse_signal(b'{"type":"BUY","price":1,"pad":"' + b"x" * 200 + b'"}', 100)
