"""The seed reference: the straightforward relay, FastAPI + python-socketio ASGI on uvicorn.

Run as `uvicorn bench.peers.seed_relay:app --port N` with REDIS_URL (and SIGNAL_CHANNEL) in the
environment. The relay loop is the naive one: `get_message()` without a timeout, emit what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import redis.asyncio as aioredis
import socketio
from fastapi import FastAPI, Response

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
CHANNEL = os.environ.get("SIGNAL_CHANNEL", "quantum_signals")

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
state = {"subscribed": False}


async def relay() -> None:
    """Forward every channel message to every client as `new_signal`."""
    client = aioredis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    state["subscribed"] = True
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True)
        if message is not None:
            await sio.emit("new_signal", json.loads(message["data"]))


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI):
    """Run the relay for the life of the server."""
    task = asyncio.create_task(relay())
    yield
    task.cancel()


api = FastAPI(lifespan=lifespan)


@api.get("/readyz")
async def readyz() -> Response:
    """200 once subscribed."""
    return Response("ok" if state["subscribed"] else "not subscribed", status_code=200 if state["subscribed"] else 503)


app = socketio.ASGIApp(sio, other_asgi_app=api)
