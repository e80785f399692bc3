"""Operations endpoints: the probes /healthz and /readyz, /metrics, and the memory of whether Redis answers."""

from __future__ import annotations

import logging
import re
import time

import redis
from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.signal_schema import LAST_SCAN_KEY
from backend.web.metrics import notify_metrics
from backend.web.relay import HEARTBEAT_STALE_S

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)


def _redis_state() -> dict:
    return current_app.extensions.setdefault("qs_redis_error", {"last": None})


def redis_down(exc: Exception) -> str:
    """The public reason for EXC (its type only: messages name hosts); log the full error once per change."""
    state = _redis_state()
    full = f"{type(exc).__name__}: {exc}"
    if state["last"] != full:
        state["last"] = full
        log.warning("Redis unavailable: %s", full)
    return f"Redis unavailable ({type(exc).__name__})"


def redis_up() -> None:
    """Note that Redis answers again, logging the recovery once."""
    state = _redis_state()
    if state["last"] is not None:
        state["last"] = None
        log.info("Redis answers again")


def _error_type(detail: str | None) -> str:
    """The exception type at the head of a 'Type: message' DETAIL, never the message (it may name hosts)."""
    head = (detail or "starting").split(":", 1)[0]
    return head if re.fullmatch(r"\w{1,64}", head) else "error"


def relay_state(relay) -> str:
    """The relay as readiness sees it: a loop that stopped beating is stalled, whatever it last said."""
    if not relay.alive():
        return f"stalled (no heartbeat for over {HEARTBEAT_STALE_S:g} s)"
    return "subscribed" if relay.subscribed else "not subscribed"


@bp.get("/healthz")
def healthz():
    """200 while the process serves."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when Redis answers and the relay is subscribed; 503 with the reason otherwise."""
    relay = current_app.extensions["qs_relay"]
    body = {"relay": relay_state(relay), "epoch": relay.epoch, "seq": relay.last_seq}
    reasons = []
    try:
        client = current_app.extensions["qs_redis"]
        client.ping()
        body["redis"] = "ok"
        last_scan = client.get(LAST_SCAN_KEY)
        body["last_scan_age_s"] = round(time.time() - float(last_scan), 1) if last_scan else None
        redis_up()
    except redis.RedisError as exc:
        reason = redis_down(exc)
        body["redis"] = reason.removeprefix("Redis ")
        reasons.append(reason)
    if not relay.ready():
        reasons.append(f"relay {relay_state(relay)} ({_error_type(relay.last_error)})")
    body["status"] = "ready" if not reasons else "not ready"
    if reasons:
        body["reason"] = "; ".join(reasons)
    return jsonify(body), 200 if not reasons else 503


@bp.get("/metrics")
def metrics():
    """Prometheus text: this process's metrics, then the notification counts kept in Redis."""
    body = generate_latest() + notify_metrics(current_app.extensions["qs_redis"])
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
