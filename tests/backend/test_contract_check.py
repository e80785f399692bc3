"""The suite's payload check (harness/contract.py) refuses what docs/asyncapi.json does not allow."""

from __future__ import annotations

from backend import destinations
from harness import contract


def test_a_payload_off_the_contract_is_recorded_for_the_test_that_received_it():
    contract.check_event("new_signal", {"type": "BUY", "price": 1, "seq": 3, "epoch": "e-1"})
    contract.check_event("welcome", {"epoch": "e-1", "seq": 0})
    contract.check_event("connect_error", "anything")  # not an event of the contract
    assert contract.take() == []

    contract.check_event("new_signal", {"type": "buy", "price": 1})
    contract.check_event("signal_outcome", {"epoch": "e-1", "seq": 1})
    found = contract.take()
    assert len(found) == 2
    assert "new_signal payload $.type" in found[0]
    assert "'id' is a required property" in found[1]


def test_a_signed_webhook_is_checked_and_an_apprise_post_is_not():
    body = b'{"type": "SELL", "price": 2.5, "epoch": "e-1", "seq": 7}'
    headers = {"Quantum-Signature": destinations.signature_header("s", body), "Idempotency-Key": "e-1:7"}
    contract.check_webhook(headers, body)
    contract.check_webhook({}, b'{"title": "BUY", "message": "not ours"}')
    assert contract.take() == []

    contract.check_webhook({**headers, "Idempotency-Key": "e-1:"}, b'{"type": "SELL", "price": -1}')
    found = contract.take()
    assert any("headers" in text and "Idempotency-Key" in text for text in found)
    assert any("payload $.price" in text for text in found)
