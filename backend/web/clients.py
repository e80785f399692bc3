"""Socket.IO clients on `/`: connect auth, the welcome cursor, replay from history, symbol rooms."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import redis
import redis.asyncio
import socketio
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backend import compat, history
from backend.signal_schema import EVENT_NEW_SIGNAL, EVENT_RESYNC, EVENT_SUBSCRIBE, EVENT_WELCOME
from backend.web import metrics
from backend.web.auth import token_ok
from backend.web.params import BadRequest, parse_since, parse_symbols
from backend.web.relay import ALL_ROOM, Relay, symbol_room

log = logging.getLogger(__name__)

NAMESPACE = "/"
HANDLED_EVENTS = frozenset({"connect", "disconnect", EVENT_SUBSCRIBE})
RELAY_WAIT_S = 5.0
# Replay is paced by the client: the next batch waits until its queue is this short. A client that does not
# read for DRAIN_WAIT_S is cut, so a stalled reader costs a bounded amount of memory, not the whole history.
MAX_QUEUED_PACKETS = 200
DRAIN_WAIT_S = 10.0


@dataclass
class ClientState:
    """What one connected client asked for."""

    rooms: set[str] = field(default_factory=lambda: {ALL_ROOM})
    symbols: frozenset[str] | None = None
    live: bool = False


def rooms_for(symbols: frozenset[str] | None) -> set[str]:
    """The rooms that carry the signals of SYMBOLS."""
    return {ALL_ROOM} if symbols is None else {symbol_room(s) for s in symbols}


def query_params(environ: dict[str, Any]) -> dict[str, str]:
    """The connect URL's query parameters (the first value of each), as python-engineio's environ carries them."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return {name: values[0] for name, values in query.items()}


class SignalsNamespace(socketio.AsyncNamespace):  # type: ignore[misc]  # python-socketio ships no types
    """The `/` namespace: its handlers bring each client from its cursor to the live stream."""

    def __init__(
        self, relay: Relay, client: redis.asyncio.Redis, tokens: tuple[str, ...], subscribe_rate: str = "5/second"
    ) -> None:
        """Bind to the relay whose cursor is authoritative and the history reader; register with register_namespace."""
        super().__init__(NAMESPACE)
        self.relay = relay
        self.redis = client
        self.tokens = tokens
        self.clients: dict[str, ClientState] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # attach tasks, held so none is collected while it runs
        # Each subscribe moves the client between up to MAX_SYMBOLS rooms: cheap once, not a thousand times.
        self._subscribe_rate = parse_many(subscribe_rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        metrics.CLIENTS_CONNECTED.set_function(lambda: len(self.clients))

    async def stop(self) -> None:
        """Cancel the attach tasks still running (at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def trigger_event(self, event: object, *args: Any) -> Any:
        """Dispatch EVENT to its on_ method; any other name a client sends is not handled (and gets no ack).

        A set lookup, as python-socketio's own handler table does: an unhashable name (a list) still fails
        there and is logged in one line (compat.socketio_event_errors_logged).
        """
        if event not in HANDLED_EVENTS:
            return self.server.not_handled
        return await super().trigger_event(event, *args)

    def _reserved(self, event: str, sid: str) -> bool:
        """True (and counted) when connected client SID sent an event named EVENT itself.

        python-socketio dispatches `42["connect"]` and `42["disconnect"]` to the same handlers as the
        real thing. A real connect or disconnect is pending while its handler runs, so the client does
        not count as connected yet (or any more); a forged one comes from a client that does.
        """
        if not self.server.manager.is_connected(sid, NAMESPACE):
            return False
        metrics.CLIENT_EVENTS_REFUSED.labels(reason=f"reserved:{event}").inc()
        log.warning(
            "refused a %r event sent by client %s: that name is reserved", event, sid, extra={"rate_limited": True}
        )
        return True

    async def on_connect(self, sid: str, environ: Any = None, auth: Any = None) -> None:
        """Check the token, read the cursor and filter, then attach the client in the background.

        ENVIRON is optional: a forged `42["connect"]` arrives with the sid alone, and must reach _reserved.
        """
        if self._reserved("connect", sid):
            return None
        auth = auth if isinstance(auth, dict) else {}
        args = query_params(environ) if isinstance(environ, dict) else {}

        def param(name: str) -> object:
            """The connect auth's NAME, else the query string's."""
            return auth.get(name, args.get(name))

        if not token_ok(param("token"), self.tokens):
            metrics.CLIENT_EVENTS_REFUSED.labels(reason="unauthorized").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                'unauthorized: pass a valid token in the connect auth {"token": …}'
            )
        try:
            since = parse_since(param("since"))
            symbols = parse_symbols(param("symbols"))
        except BadRequest as exc:
            raise socketio.exceptions.ConnectionRefusedError(f"bad request: {exc}") from None
        state = ClientState(rooms=rooms_for(symbols), symbols=symbols)
        self.clients[sid] = state
        task = asyncio.create_task(self.attach(sid, state, since, param("epoch")), name="qs-attach")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def on_disconnect(self, sid: str, *_reason: object) -> None:
        """Forget the client."""
        if self._reserved("disconnect", sid):
            return
        self.clients.pop(sid, None)

    async def on_subscribe(
        self, sid: str, data: object = None, *_extra: object
    ) -> dict[str, object]:  # a stranger may send more arguments than one
        """Change the client's symbol filter; answers {"symbols": [...]} or {"error": ...}."""
        state = self.clients.get(sid)
        if state is None:
            return {"error": "not connected"}
        if not all(self._limiter.hit(rate, "subscribe", sid) for rate in self._subscribe_rate):
            metrics.CLIENT_EVENTS_REFUSED.labels(reason="subscribe rate").inc()
            limit = "; ".join(str(rate) for rate in self._subscribe_rate)
            return {"error": f"too many subscribe events (limit {limit}); wait a moment and send it again"}
        try:
            symbols = parse_symbols((data or {}).get("symbols") if isinstance(data, dict) else None)
        except BadRequest as exc:
            return {"error": str(exc)}
        new_rooms = rooms_for(symbols)
        if state.live:
            manager = self.server.manager
            for room in state.rooms - new_rooms:
                manager.basic_leave_room(sid, NAMESPACE, room)
            for room in new_rooms - state.rooms:
                manager.basic_enter_room(sid, NAMESPACE, room)
        state.rooms, state.symbols = new_rooms, symbols
        return {"symbols": sorted(symbols) if symbols else None}

    async def _send(self, sid: str, event: str, data: dict[str, Any]) -> None:
        await self.server.emit(event, data, to=sid, namespace=NAMESPACE)

    def _queued(self, sid: str) -> int:
        """Packets waiting in the client's Engine.IO queue (0 when it is gone)."""
        eio_sid = self.server.manager.eio_sid_from_sid(sid, NAMESPACE)
        return compat.engineio_backlog(self.server.eio, eio_sid)[0] if eio_sid else 0

    async def _wait_drained(self, sid: str) -> bool:
        """Wait until the client has read most of what it was sent; False if it stopped reading."""
        deadline = time.monotonic() + DRAIN_WAIT_S
        while self._queued(sid) > MAX_QUEUED_PACKETS:
            if sid not in self.clients:
                return False
            if time.monotonic() > deadline:
                log.warning("client %s stopped reading during replay; disconnecting it", sid)
                await self.server.disconnect(sid, namespace=NAMESPACE)
                return False
            await asyncio.sleep(0.05)
        return True

    async def _wait_for_relay(self, sid: str) -> bool:
        """Wait until the relay has a cursor and the client's connect is complete; False if the client left."""
        deadline = time.monotonic() + 3600
        # This task starts inside the connect handler, before python-socketio marks the client connected.
        while not (self.relay.epoch and self.relay.subscribed and self.server.manager.is_connected(sid, NAMESPACE)):
            if sid not in self.clients or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02 if self.relay.subscribed else 0.1)
        return True

    async def attach(self, sid: str, state: ClientState, since: int | None, epoch: object) -> None:
        """Send welcome, replay seq > since from history, then join the live rooms with no gap."""
        if not await self._wait_for_relay(sid):
            return
        relay = self.relay
        await self._send(sid, EVENT_WELCOME, {"epoch": relay.epoch, "seq": relay.last_seq})
        if since is not None:
            try:
                await self._replay(sid, state, since, epoch)
            except redis.RedisError as exc:
                log.warning("replay to %s failed (%s); it joins live", sid, exc)
        if sid in self.clients and self.server.manager.is_connected(sid, NAMESPACE):
            # No await between the relay cursor check in _replay and this join: the relay picks the recipients
            # of seq N right after advancing to N, so this client gets each seq from exactly one of the two.
            manager = self.server.manager
            for room in state.rooms:
                manager.basic_enter_room(sid, NAMESPACE, room)
            state.live = True

    async def _replay(self, sid: str, state: ClientState, cursor: int, epoch: object) -> None:
        relay = self.relay
        if epoch not in (None, "", relay.epoch):
            await self._send(sid, EVENT_RESYNC, {"epoch": relay.epoch})
            cursor = 0
        deadline = time.monotonic() + RELAY_WAIT_S
        while cursor > relay.last_seq:
            # A cursor ahead of this relay: wait for the relay, or resync if history never had it.
            stored_epoch, stored_seq = await history.acursor(self.redis)
            if cursor > stored_seq or stored_epoch != relay.epoch or time.monotonic() > deadline:
                await self._send(sid, EVENT_RESYNC, {"epoch": relay.epoch})
                cursor = 0
                break
            await asyncio.sleep(0.02)
        current_epoch = relay.epoch
        while sid in self.clients:
            target = relay.last_seq
            if relay.epoch != current_epoch:
                await self._send(sid, EVENT_RESYNC, {"epoch": relay.epoch})
                current_epoch, cursor = relay.epoch, 0
                continue
            if cursor >= target:
                return  # caller joins the rooms before anything else runs
            if not await self._wait_drained(sid):
                return
            batch = await history.aread_entries(self.redis, cursor, target, count=MAX_QUEUED_PACKETS)
            if not batch:
                cursor = target  # trimmed out of history: nothing left to send
                continue
            for _seq, signal in batch:
                if signal is not None and (state.symbols is None or signal.get("symbol") in state.symbols):
                    await self._send(sid, EVENT_NEW_SIGNAL, signal)
                    metrics.SIGNALS_REPLAYED.inc()
            cursor = batch[-1][0]
