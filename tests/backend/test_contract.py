"""The contract's models (backend/contract.py) are the one source: the relay's fast check, the Signal TypedDict,
the intake's fields and the AsyncAPI document agree with them."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic import ValidationError

from backend import asyncapi, contract, intake, signal_schema
from backend.signal_schema import InvalidSignal, parse_signal

MAX = 64 * 1024

# Channel messages both checks must judge alike: (message, accepted).
CASES = [
    ({"type": "BUY", "price": 1}, True),
    ({"type": "SELL", "price": 60000.5, "symbol": "BTC/USD", "seq": 1, "epoch": "e-1"}, True),
    ({"type": "BUY", "price": 1, "indicators": {"rsi": None, "ema": 3.5}, "extra": [1, {"a": "b"}]}, True),
    ({"type": "BUY", "price": 1, "seq": 2**63 - 1}, True),
    ({"type": "buy", "price": 1}, False),
    ({"type": "BUY", "price": 0}, False),
    ({"type": "BUY", "price": -1.5}, False),
    ({"type": "BUY", "price": "1"}, False),
    ({"type": "BUY", "price": True}, False),
    ({"type": "BUY"}, False),
    ({"price": 1}, False),
    ({"type": "BUY", "price": 1, "seq": 0}, False),
    ({"type": "BUY", "price": 1, "seq": 2**63}, False),
    ({"type": "BUY", "price": 1, "seq": 1.5}, False),
    ({"type": "BUY", "price": 1, "epoch": "a b"}, False),
    ({"type": "BUY", "price": 1, "epoch": "x" * 65}, False),
    ({"type": "BUY", "price": 1, "symbol": 5}, False),
    ({"type": "BUY", "price": 1, "reason": 5}, False),
    ({"type": "BUY", "price": 1, "id": ["x"]}, False),
    ({"type": "BUY", "price": 1, "v": "1"}, False),
    ({"type": "BUY", "price": 1, "v": True}, False),
    ({"type": "BUY", "price": 1, "indicators": {"rsi": "50"}}, False),
    ({"type": "BUY", "price": 1, "indicators": {"rsi": False}}, False),
    ({"type": "BUY", "price": 1, "indicators": [1]}, False),
    ({"type": "BUY", "price": 1, "reason": None, "indicators": None, "v": 1}, True),
]


@pytest.mark.parametrize(("message", "accepted"), CASES)
def test_the_relays_fast_check_agrees_with_the_signal_model(message, accepted):
    raw = json.dumps(message).encode()
    try:
        parse_signal(raw, MAX)
        fast = True
    except InvalidSignal:
        fast = False
    try:
        contract.Signal.model_validate_json(raw, strict=True)
        model = True
    except ValidationError:
        model = False
    assert (fast, model) == (accepted, accepted), f"parse_signal {fast}, model {model} for {message}"


def test_the_signal_typeddict_has_the_models_fields():
    hints = typing.get_type_hints(signal_schema.Signal, include_extras=True)
    assert set(hints) == set(contract.Signal.model_fields)
    required = {name for name, field in contract.Signal.model_fields.items() if field.is_required()}
    # __required_keys__ misses Required[] under `from __future__ import annotations` (Python < 3.14): read the hints.
    marked = {name for name, hint in hints.items() if typing.get_origin(hint) is typing.Required}
    assert marked == required == {"type", "price"}


def test_the_fast_checks_text_fields_are_the_models():
    fields = contract.Signal.model_fields.items()
    # epoch is text too, with a pattern of its own that parse_signal checks apart.
    text = {name for name, field in fields if field.annotation == str | None and not field.metadata}
    assert set(signal_schema.TEXT_FIELDS) == text


def test_the_intake_takes_the_incoming_models_fields():
    assert tuple(contract.IncomingSignal.model_fields) == intake.FIELDS
    with pytest.raises(InvalidSignal, match="a signal has only type, price, symbol"):
        intake.normalize_signal({"type": "BUY", "price": 1, "colour": "red"}, "test")


def test_the_asyncapi_document_names_each_message_with_its_models_schema():
    doc = asyncapi.build()
    assert doc["asyncapi"] == "3.0.0"
    schemas, messages = doc["components"]["schemas"], doc["components"]["messages"]
    assert messages["new_signal"]["payload"] == {"$ref": "#/components/schemas/Signal"}
    assert messages["webhook"]["payload"] == {"$ref": "#/components/schemas/Signal"}
    assert messages["webhook"]["headers"] == {"$ref": "#/components/schemas/WebhookHeaders"}
    expected = {"welcome": "Welcome", "resync": "Resync", "signal_outcome": "Outcome", "subscribe": "Subscribe"}
    for name, model in expected.items():
        assert messages[name]["payload"] == {"$ref": f"#/components/schemas/{model}"}
    assert schemas["Signal"]["required"] == ["type", "price"]
    assert schemas["Signal"]["properties"]["price"]["exclusiveMinimum"] == 0
    channels = {channel["address"] for channel in doc["channels"].values()}
    assert {"quantum_signals", "quantum_signals:outcomes", "/"} <= channels
    for model in contract.MODELS:  # each schema is the model's own, not a copy
        own = model.model_json_schema(ref_template=asyncapi.SCHEMA_REF)
        own.pop("$defs", None)
        assert schemas[model.__name__] == own


def test_the_webhook_headers_pattern_takes_what_the_worker_sends():
    from backend import destinations

    header = destinations.signature_header("secret", b'{"type":"BUY"}', 1700000000)
    headers = contract.WebhookHeaders.model_validate({"Quantum-Signature": header, "Idempotency-Key": "e-1:42"})
    assert headers.signature == header
    with pytest.raises(ValidationError, match="Idempotency-Key"):
        contract.WebhookHeaders.model_validate({"Quantum-Signature": header, "Idempotency-Key": "None:None"})
