"""The AsyncAPI 3.0 document of the Redis channels, Socket.IO events and webhooks, from backend/contract.py.

Served at /api/asyncapi.json and written to docs/asyncapi.json by `make contract` (docs/architecture.md,
"The contract"); every schema in it is a model's model_json_schema, none is copied by hand.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from backend import contract
from backend.settings import Settings
from backend.signal_schema import (
    CHANNEL_DEFAULT,
    EVENT_NEW_SIGNAL,
    EVENT_RESYNC,
    EVENT_SIGNAL_OUTCOME,
    EVENT_SUBSCRIBE,
    EVENT_WELCOME,
    SCHEMA_VERSION,
    outcome_channel,
)

SCHEMA_REF = "#/components/schemas/{model}"


def _ref(path: str) -> dict[str, str]:
    """A JSON reference to PATH."""
    return {"$ref": path}


def _schemas() -> dict[str, Any]:
    """Every contract model's JSON Schema, keyed by its name, refs pointing into components/schemas."""
    _, top = models_json_schema([(model, "validation") for model in contract.MODELS], ref_template=SCHEMA_REF)
    return top["$defs"]


def _message(name: str, summary: str, schema: str, **extra: Any) -> dict[str, Any]:
    """A message whose payload is the components schema SCHEMA."""
    return {"name": name, "summary": summary, "payload": _ref(SCHEMA_REF.format(model=schema)), **extra}


def build() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a JSON-ready dict."""
    msg = "#/components/messages/"
    messages = {
        "signal": _message("signal", "A signal as published on the channel", "Signal"),
        "outcome_announcement": _message(
            "outcome_announcement", "The worker stored outcome h of (epoch, seq)", "OutcomeAnnouncement"
        ),
        EVENT_NEW_SIGNAL: _message(EVENT_NEW_SIGNAL, "A signal, live or replayed, in seq order", "Signal"),
        EVENT_WELCOME: _message(EVENT_WELCOME, "First event after connect: the relay's epoch and last seq", "Welcome"),
        EVENT_RESYNC: _message(EVENT_RESYNC, "The client's cursor is stale: restart from seq 0", "Resync"),
        EVENT_SIGNAL_OUTCOME: _message(EVENT_SIGNAL_OUTCOME, "A signal's outcome at one horizon", "Outcome"),
        EVENT_SUBSCRIBE: _message(EVENT_SUBSCRIBE, "Follow these symbols (null: all)", "Subscribe"),
        "subscribe_ack": {
            "name": "subscribe_ack",
            "summary": "The acknowledgement of subscribe",
            "payload": {
                "oneOf": [
                    _ref(SCHEMA_REF.format(model="SubscribeAck")),
                    _ref(SCHEMA_REF.format(model="SubscribeRefused")),
                ]
            },
        },
        "webhook": _message(
            "webhook",
            "A stored signal POSTed to a webhook destination, signed",
            "Signal",
            headers=_ref(SCHEMA_REF.format(model="WebhookHeaders")),
            contentType="application/json",
        ),
    }
    socket_events = (EVENT_NEW_SIGNAL, EVENT_WELCOME, EVENT_RESYNC, EVENT_SIGNAL_OUTCOME)
    channels = {
        "signals": {
            "address": CHANNEL_DEFAULT,
            "description": "Redis pub/sub channel (SIGNAL_CHANNEL); anyone may publish, the relay checks each message",
            "servers": [_ref("#/servers/redis")],
            "messages": {"signal": _ref(msg + "signal")},
        },
        "outcomes": {
            "address": outcome_channel(CHANNEL_DEFAULT),
            "description": "Redis pub/sub channel: SIGNAL_CHANNEL + ':outcomes'",
            "servers": [_ref("#/servers/redis")],
            "messages": {"outcome_announcement": _ref(msg + "outcome_announcement")},
        },
        "socketio": {
            "address": "/",
            "description": "Socket.IO default namespace; connect with auth {token, since, epoch, symbols}",
            "servers": [_ref("#/servers/web")],
            "messages": {
                **{name: _ref(msg + name) for name in socket_events},
                EVENT_SUBSCRIBE: _ref(msg + EVENT_SUBSCRIBE),
                "subscribe_ack": _ref(msg + "subscribe_ack"),
            },
        },
        "webhook": {
            "address": None,
            "description": "Each webhook destination's URL (NOTIFY_URLS / NOTIFY_CONFIG): one POST per signal",
            "messages": {"webhook": _ref(msg + "webhook")},
        },
    }

    def op(action: str, channel: str, *names: str, **extra: Any) -> dict[str, Any]:
        """An operation: ACTION (send or receive) of the messages NAMES on CHANNEL."""
        refs = [_ref(f"#/channels/{channel}/messages/{name}") for name in names]
        return {"action": action, "channel": _ref(f"#/channels/{channel}"), "messages": refs, **extra}

    operations = {
        "publishSignal": op("send", "signals", "signal"),
        "announceOutcome": op("send", "outcomes", "outcome_announcement"),
        **{f"receive_{name}": op("receive", "socketio", name) for name in socket_events},
        "subscribe": op(
            "send",
            "socketio",
            EVENT_SUBSCRIBE,
            reply={
                "channel": _ref("#/channels/socketio"),
                "messages": [_ref("#/channels/socketio/messages/subscribe_ack")],
            },
        ),
        "deliverWebhook": op("send", "webhook", "webhook"),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Quantum Signals",
            "version": str(SCHEMA_VERSION),
            "description": "Signals on Redis pub/sub, relayed to Socket.IO clients and signed webhooks.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {"host": "127.0.0.1:6379", "protocol": "redis"},
            "web": {"host": f"127.0.0.1:{Settings().port}", "protocol": "ws", "pathname": "/socket.io/"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _schemas(), "messages": messages},
    }
