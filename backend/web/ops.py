"""Operations endpoints: the probes /healthz and /readyz, /metrics, and the memory of whether Redis answers."""

from __future__ import annotations

import logging
import re
import time

import redis
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from backend.signal_schema import LAST_SCAN_KEY
from backend.web.metrics import notify_metrics
from backend.web.ping_wheel import HEARTBEAT_STALE_S as PING_HEARTBEAT_STALE_S
from backend.web.relay import HEARTBEAT_STALE_S, Relay
from backend.web.state import WebState, get_state

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """/healthz: the process serves."""

    status: str


class Readiness(BaseModel):
    """/readyz: Redis and the relay as this process sees them."""

    relay: str
    epoch: str | None
    seq: int
    redis: str
    last_scan_age_s: float | None = None
    status: str
    reason: str | None = None


def redis_down(state: WebState, exc: Exception) -> str:
    """The public reason for EXC (its type only: messages name hosts); log the full error once per change."""
    memory = state.redis_error
    full = f"{type(exc).__name__}: {exc}"
    if memory["last"] != full:
        memory["last"] = full
        log.warning("Redis unavailable: %s", full)
    return f"Redis unavailable ({type(exc).__name__})"


def redis_up(state: WebState) -> None:
    """Note that Redis answers again, logging the recovery once."""
    if state.redis_error["last"] is not None:
        state.redis_error["last"] = None
        log.info("Redis answers again")


def _error_type(detail: str | None) -> str:
    """The exception type at the head of a 'Type: message' DETAIL, never the message (it may name hosts)."""
    head = (detail or "starting").split(":", 1)[0]
    return head if re.fullmatch(r"\w{1,64}", head) else "error"


def relay_state(relay: Relay) -> str:
    """The relay as readiness sees it: a loop that stopped beating is stalled, whatever it last said."""
    if not relay.alive():
        return f"stalled (no heartbeat for over {HEARTBEAT_STALE_S:g} s)"
    return "subscribed" if relay.subscribed else "not subscribed"


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """200 while the process serves."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(state: WebState = Depends(get_state)) -> JSONResponse:
    """200 when Redis answers, the relay is subscribed and the ping wheel beats; 503 with the reason otherwise."""
    relay = state.relay
    body: dict[str, object] = {"relay": relay_state(relay), "epoch": relay.epoch, "seq": relay.last_seq}
    reasons: list[str] = []
    try:
        state.redis.ping()
        body["redis"] = "ok"
        last_scan = state.redis.get(LAST_SCAN_KEY)
        body["last_scan_age_s"] = round(time.time() - float(last_scan), 1) if last_scan else None
        redis_up(state)
    except redis.RedisError as exc:
        reason = redis_down(state, exc)
        body["redis"] = reason.removeprefix("Redis ")
        reasons.append(reason)
    if not relay.ready():
        reasons.append(f"relay {relay_state(relay)} ({_error_type(relay.last_error)})")
    if not state.ping_wheel.alive():
        reasons.append(f"ping wheel stalled (no heartbeat for over {PING_HEARTBEAT_STALE_S:g} s)")
    body["status"] = "ready" if not reasons else "not ready"
    if reasons:
        body["reason"] = "; ".join(reasons)
    return JSONResponse(body, status_code=200 if not reasons else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(state: WebState = Depends(get_state)) -> Response:
    """Prometheus text: this process's metrics, then the notification counts kept in Redis."""
    body = generate_latest() + notify_metrics(state.redis)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
