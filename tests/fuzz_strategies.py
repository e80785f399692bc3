"""Hypothesis strategies for what strangers send (channel messages, query strings, Socket.IO frames), the signal
contract every accepted or delivered signal must satisfy, and the seeded, time-bounded settings profile."""

from __future__ import annotations

import json
import math
import os
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from socketio import packet

from backend.signal_schema import EPOCH_RE, MAX_DEPTH, MAX_SEQ

# Seeded (derandomize) so `make test` is reproducible, no example database written into the working tree,
# and bounded: the examples are capped per test, and slow ones (real servers) are not a health failure.
settings.register_profile(
    "boundaries",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# HYPOTHESIS_PROFILE=boundaries-long: a longer, random search by hand (then add what it finds as an @example).
settings.register_profile("boundaries-long", settings.get_profile("boundaries"), derandomize=False, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "boundaries"))

SURROGATES = st.characters(categories=["Cs"])
ANY_CHAR = st.characters(codec=None, categories=None)
# Characters that matter to the parsers, so that near-valid text is drawn often, not once in a million.
SHAPED_CHAR = st.sampled_from('BUYSELbuysel0123456789.:-_ ,"\\{}[]\x00\u00df\uff21\u0661')
TEXT = st.text(st.one_of(ANY_CHAR, SURROGATES, SHAPED_CHAR), max_size=24)
KEYS = st.one_of(st.sampled_from(["type", "price", "seq", "epoch", "symbol", "id", "v", "_placeholder", "num"]), TEXT)

HUGE_INTS = st.sampled_from([2**63 - 1, 2**63, -(2**63), 2**64, 10**308, 10**309, -(10**400), 2**1100])
INTS = st.one_of(st.integers(), st.integers(-(2**1100), 2**1100), HUGE_INTS, st.integers(-3, 3))
FLOATS = st.one_of(
    st.floats(), st.sampled_from([-0.0, 0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan])
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)


def _nest(leaf: object, shape: list[bool], key: str) -> object:
    """LEAF wrapped in one list (True) or one-key object (False) per entry of SHAPE."""
    value = leaf
    for as_list in shape:
        value = [value] if as_list else {key: value}
    return value


def deep_values(leaves=JSON_LEAVES, min_depth: int = 25, max_depth: int = 60):
    """Values nested MIN_DEPTH..MAX_DEPTH levels, across the MAX_DEPTH limit of the signal check."""
    return st.builds(_nest, leaves, st.lists(st.booleans(), min_size=min_depth, max_size=max_depth), KEYS)


JSON_VALUES = st.one_of(
    st.recursive(
        JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=16
    ),
    deep_values(),
)

VALID_PRICES = st.one_of(st.floats(min_value=5e-324, max_value=1e308), st.integers(1, 2**53))
PRICES = st.one_of(VALID_PRICES, VALID_PRICES, HUGE_INTS, INTS, FLOATS, st.booleans(), TEXT, st.none(), JSON_VALUES)
SEQS = st.one_of(st.integers(1, MAX_SEQ), INTS, FLOATS, st.booleans(), TEXT, st.none())
EPOCHS = st.one_of(st.from_regex(EPOCH_RE, fullmatch=True), TEXT, JSON_LEAVES)
SYMBOLS = st.one_of(st.sampled_from(["BTCUSDT", "ETHUSDT", "btcusdt"]), TEXT, JSON_LEAVES)
TYPES = st.one_of(
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["buy", "HOLD", "BUY ", ""]),
    JSON_LEAVES,
)


def _merge(extra: dict, base: dict) -> dict:
    """EXTRA fields under the signal fields of BASE."""
    return {**extra, **base}


def signal_dicts(values=JSON_VALUES, types=TYPES, prices=PRICES):
    """Signal-shaped objects: type and price (mostly plausible), maybe seq/epoch/symbol, random extra fields."""
    base = st.fixed_dictionaries(
        {"type": types, "price": prices},
        optional={"seq": SEQS, "epoch": EPOCHS, "symbol": SYMBOLS, "id": TEXT, "indicators": values, "reason": TEXT},
    )
    return st.builds(_merge, st.dictionaries(KEYS, values, max_size=3), base)


def json_text(value: object, ascii_only: bool) -> bytes:
    """VALUE as JSON bytes; with ascii_only=False a lone surrogate becomes bytes that are not UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _splice(raw: bytes, at: int, cut: int, insert: bytes) -> bytes:
    """RAW with CUT bytes at AT replaced by INSERT (a truncated, corrupted or extended message)."""
    at %= len(raw) + 1
    return raw[:at] + insert + raw[at + cut :]


def _padded(signal: dict, size: int) -> bytes:
    """SIGNAL padded to SIZE bytes (when it is shorter), around MAX_SIGNAL_BYTES."""
    bare = len(json.dumps({**signal, "pad": ""}).encode())
    return json.dumps({**signal, "pad": "x" * max(0, size - bare)}).encode()


def _long_number(field: str, digits: int) -> bytes:
    """A signal whose FIELD is an integer of DIGITS digits (beyond float range, beyond int parsing limits)."""
    return b'{"type":"BUY","price":1,"' + field.encode() + b'":1' + b"0" * digits + b"}"


PLAUSIBLE_SIGNALS = signal_dicts(
    types=st.sampled_from(["BUY", "SELL"]), prices=st.one_of(VALID_PRICES, VALID_PRICES, VALID_PRICES, HUGE_INTS)
)
ENCODED_SIGNALS = st.builds(json_text, st.one_of(PLAUSIBLE_SIGNALS, signal_dicts(), JSON_VALUES), st.booleans())
MESSAGES = st.one_of(
    ENCODED_SIGNALS,
    ENCODED_SIGNALS,
    st.builds(_splice, ENCODED_SIGNALS, st.integers(0, 2**16), st.integers(0, 4), st.binary(max_size=6)),
    st.binary(max_size=200),
    st.text(ANY_CHAR, max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(_padded, PLAUSIBLE_SIGNALS, st.integers(65_500, 65_560)),
    st.builds(_long_number, st.sampled_from(["price", "seq", "x"]), st.sampled_from([20, 310, 4400])),
)

PY_LEAVES = st.one_of(
    JSON_LEAVES,
    st.binary(max_size=4),
    st.builds(bytearray, st.binary(max_size=4)),
    st.decimals(allow_nan=True),
    st.complex_numbers(),
    st.fractions(),
    st.builds(object),
    st.sampled_from([Fraction(1, 3), Decimal("1.5"), ...]),
    st.builds(pow, st.just(10), st.just(4299)),
)  # the most digits str() allows (4,300)
PY_VALUES = st.recursive(
    PY_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(st.one_of(KEYS, st.integers(), st.none(), st.tuples(st.integers())), inner, max_size=3),
    ),
    max_leaves=10,
)
PY_SIGNALS = st.one_of(
    signal_dicts(
        values=st.one_of(JSON_VALUES, PY_VALUES), prices=st.one_of(PRICES, PY_LEAVES), types=st.one_of(TYPES, PY_LEAVES)
    ),
    signal_dicts(values=st.one_of(JSON_VALUES, PY_VALUES), prices=VALID_PRICES, types=st.sampled_from(["BUY"])),
)


def depth(value: object) -> int:
    """Levels of nesting of containers in VALUE (a flat object is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def texts(value: object) -> list[str]:
    """Every string in VALUE, keys included."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.append(item)
    return found


def assert_contract(signal: object) -> None:
    """SIGNAL is what the relay may hand to Socket.IO: the contract of backend/signal_schema.py, encodable."""
    assert isinstance(signal, dict), signal
    assert signal["type"] in ("BUY", "SELL"), signal["type"]
    price = signal["price"]
    assert isinstance(price, (int, float)) and not isinstance(price, bool), price
    # float(): a JSON number a browser reads as Infinity is not a finite price either
    assert math.isfinite(float(price)) and price > 0, price
    seq = signal.get("seq")
    assert seq is None or (type(seq) is int and 1 <= seq <= MAX_SEQ), seq
    epoch = signal.get("epoch")
    assert epoch is None or (isinstance(epoch, str) and EPOCH_RE.fullmatch(epoch)), epoch
    assert signal.get("symbol") is None or isinstance(signal["symbol"], str)
    assert depth(signal) <= MAX_DEPTH
    for text in texts(signal):
        text.encode("utf-8")
    json.dumps(signal, allow_nan=False)
    frame = packet.Packet(packet.EVENT, data=["new_signal", signal]).encode()
    assert isinstance(frame, str), "a signal must never become a binary packet"
    frame.encode("utf-8")
    assert packet.Packet(encoded_packet=frame).data == ["new_signal", signal], "python-socketio cannot decode it"


# Strategy specs as an operator might mistype them: the parsers' own characters, names and numbers, spliced.
SPEC_PIECES = st.sampled_from(
    [
        "cross:",
        "level:",
        "py:",
        "sma_cross",
        "rsi",
        "fast=",
        "slow=",
        "of=",
        "lower=",
        "upper=",
        "EMA",
        "BBANDS",
        "MACD",
        "close",
        "(",
        ")",
        ",",
        ".",
        ".upperband",
        "=",
        ":",
        ";",
        "9",
        "2.5",
        "-1",
        "0",
        "1e3",
        " ",
    ]
)
SPEC_TEXT = st.one_of(st.lists(SPEC_PIECES, max_size=16).map("".join), TEXT)
