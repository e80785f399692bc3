"""Every payload a test client receives, checked against the committed docs/asyncapi.json with jsonschema.

RecordingClient (and so the web tests' LiveSocket) checks each new_signal, welcome, resync and signal_outcome,
and the subscribe acknowledgement; the webhook Receiver checks each signed delivery's body and headers. A payload
that does not validate is recorded in VIOLATIONS; tests/conftest.py's autouse fixture fails the test that received
it (the clients run in threads of their own, where an exception would fail nothing).
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

from jsonschema import Draft202012Validator

from harness.processes import ROOT

ASYNCAPI_PATH = ROOT / "docs" / "asyncapi.json"
CHECKED_EVENTS = ("new_signal", "welcome", "resync", "signal_outcome")
SIGNATURE_HEADER = "Quantum-Signature"

VIOLATIONS: list[str] = []
_lock = threading.Lock()


@functools.cache
def document() -> dict[str, Any]:
    """The committed AsyncAPI document."""
    return json.loads(ASYNCAPI_PATH.read_text(encoding="utf-8"))


@functools.cache
def validator(message: str, part: str = "payload") -> Draft202012Validator:
    """A validator of MESSAGE's PART (payload or headers), its $refs resolved inside the document's components."""
    doc = document()
    schema = {**doc["components"]["messages"][message][part], "components": doc["components"]}
    return Draft202012Validator(schema)


def problems(message: str, value: object, part: str = "payload") -> list[str]:
    """What is wrong with VALUE as MESSAGE's PART; empty when it validates."""
    return [
        f"{message} {part} {error.json_path}: {error.message}" for error in validator(message, part).iter_errors(value)
    ]


def record(message: str, value: object, part: str = "payload") -> None:
    """Check VALUE; keep what is wrong for the autouse fixture to fail the test with."""
    found = problems(message, value, part)
    if found:
        with _lock:
            VIOLATIONS.extend(f"{text} (received {str(value)[:200]})" for text in found)


def check_event(event: str, data: object) -> None:
    """Check a Socket.IO event a test client received, when the contract describes it."""
    if event in CHECKED_EVENTS:
        record(event, data)


def check_webhook(headers: dict[str, str], body: bytes) -> None:
    """Check a signed webhook delivery (one with Quantum-Signature; Apprise's json:// posts are not ours)."""
    if SIGNATURE_HEADER not in headers:
        return
    record("webhook", {name: headers.get(name) for name in (SIGNATURE_HEADER, "Idempotency-Key")}, "headers")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        with _lock:
            VIOLATIONS.append(f"webhook body is not JSON: {exc}")
        return
    record("webhook", payload)


def take() -> list[str]:
    """The violations recorded since the last take, cleared."""
    with _lock:
        found = VIOLATIONS[:]
        VIOLATIONS.clear()
    return found
