"""Socket.IO clients: connect auth, the welcome cursor, replay from history, symbol rooms."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass, field

import redis
from flask import request
from flask_socketio import ConnectionRefusedError
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backend import compat, history
from backend.signal_schema import EVENT_NEW_SIGNAL, EVENT_RESYNC, EVENT_SUBSCRIBE, EVENT_WELCOME
from backend.web import metrics
from backend.web.relay import ALL_ROOM, Relay, symbol_room

log = logging.getLogger(__name__)

MAX_SYMBOLS = 200
RELAY_WAIT_S = 5.0
# Replay is paced by the client: the next batch waits until its queue is this short. A client that does not
# read for DRAIN_WAIT_S is cut, so a stalled reader costs a bounded amount of memory, not the whole history.
MAX_QUEUED_PACKETS = 200
DRAIN_WAIT_S = 10.0


class BadRequest(ValueError):
    """A client parameter that cannot be used; the message says which and why."""


@dataclass
class ClientState:
    """What one connected client asked for."""

    rooms: set[str] = field(default_factory=lambda: {ALL_ROOM})
    symbols: frozenset[str] | None = None
    live: bool = False


def token_ok(presented: object, tokens: tuple[str, ...]) -> bool:
    """True when no token is configured or PRESENTED matches one (constant-time)."""
    if not tokens:
        return True
    if not isinstance(presented, str) or not presented:
        return False
    # surrogatepass: a lone surrogate in a stranger's token is a wrong token, not an encoding crash
    raw = presented.encode("utf-8", "surrogatepass")
    matches = [hmac.compare_digest(raw, token.encode()) for token in tokens]
    return any(matches)


def parse_symbols(value: object) -> frozenset[str] | None:
    """A symbol filter from a list or a comma-separated string; None means all symbols."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise BadRequest('"symbols" must be a list of symbol strings such as ["BTCUSDT"]')
    symbols = frozenset(s.strip().upper() for s in value if s.strip())
    if len(symbols) > MAX_SYMBOLS or not all(s.isalnum() and len(s) <= 32 for s in symbols):
        raise BadRequest(f'"symbols" must hold at most {MAX_SYMBOLS} alphanumeric symbols')
    return symbols or None


def parse_since(value: object) -> int | None:
    """The client's cursor: a non-negative integer seq, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRequest('"since" must be a non-negative integer seq')
    try:
        since = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity, which JSON auth may carry
        raise BadRequest(f'"since" must be a non-negative integer seq, got {value!r}') from None
    if since < 0:
        raise BadRequest(f'"since" must be a non-negative integer seq, got {since}')
    return since


def rooms_for(symbols: frozenset[str] | None) -> set[str]:
    """The rooms that carry the signals of SYMBOLS."""
    return {ALL_ROOM} if symbols is None else {symbol_room(s) for s in symbols}


class ClientHub:
    """Registers the Socket.IO handlers and brings each client from its cursor to the live stream."""

    def __init__(
        self, socketio, relay: Relay, client: redis.Redis, tokens: tuple[str, ...], subscribe_rate: str = "5/second"
    ):
        """Bind to the extension, the relay whose cursor is authoritative, and the history reader."""
        self.socketio = socketio
        self.relay = relay
        self.client = client
        self.tokens = tokens
        self.clients: dict[str, ClientState] = {}
        # Each subscribe moves the client between up to MAX_SYMBOLS rooms: cheap once, not a thousand times.
        self._subscribe_rate = parse_many(subscribe_rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        metrics.CLIENTS_CONNECTED.set_function(lambda: len(self.clients))
        socketio.on_event("connect", self.on_connect)
        socketio.on_event("disconnect", self.on_disconnect)
        socketio.on_event(EVENT_SUBSCRIBE, self.on_subscribe)

    def _reserved(self, event: str) -> bool:
        """True (and counted) when a connected client sent an event named EVENT itself.

        python-socketio dispatches `42["connect"]` and `42["disconnect"]` to the same handlers as the
        real thing. A real connect or disconnect is pending while its handler runs, so the client does
        not count as connected yet (or any more); a forged one comes from a client that does.
        """
        if not self.socketio.server.manager.is_connected(request.sid, "/"):
            return False
        metrics.CLIENT_EVENTS_REFUSED.labels(reason=f"reserved:{event}").inc()
        log.warning(
            "refused a %r event sent by client %s: that name is reserved",
            event,
            request.sid,
            extra={"rate_limited": True},
        )
        return True

    def on_connect(self, auth=None):
        """Check the token, read the cursor and filter, then attach the client in the background."""
        if self._reserved("connect"):
            return None
        auth = auth if isinstance(auth, dict) else {}
        args = request.args

        def param(name):
            return auth.get(name, args.get(name))

        if not token_ok(param("token"), self.tokens):
            metrics.CLIENT_EVENTS_REFUSED.labels(reason="unauthorized").inc()
            raise ConnectionRefusedError('unauthorized: pass a valid token in the connect auth {"token": …}')
        try:
            since = parse_since(param("since"))
            symbols = parse_symbols(param("symbols"))
        except BadRequest as exc:
            raise ConnectionRefusedError(f"bad request: {exc}") from None
        epoch = param("epoch")
        state = ClientState(rooms=rooms_for(symbols), symbols=symbols)
        self.clients[request.sid] = state
        self.socketio.start_background_task(self.attach, request.sid, state, since, epoch)

    def on_disconnect(self, *args):
        """Forget the client."""
        if self._reserved("disconnect"):
            return
        self.clients.pop(request.sid, None)

    def on_subscribe(self, data=None, *_extra):  # a stranger may send more arguments than one
        """Change the client's symbol filter; answers {"symbols": [...]} or {"error": ...}."""
        state = self.clients.get(request.sid)
        if state is None:
            return {"error": "not connected"}
        if not all(self._limiter.hit(rate, "subscribe", request.sid) for rate in self._subscribe_rate):
            metrics.CLIENT_EVENTS_REFUSED.labels(reason="subscribe rate").inc()
            limit = "; ".join(str(rate) for rate in self._subscribe_rate)
            return {"error": f"too many subscribe events (limit {limit}); wait a moment and send it again"}
        try:
            symbols = parse_symbols((data or {}).get("symbols") if isinstance(data, dict) else None)
        except BadRequest as exc:
            return {"error": str(exc)}
        new_rooms = rooms_for(symbols)
        if state.live:
            for room in state.rooms - new_rooms:
                self.socketio.server.leave_room(request.sid, room, namespace="/")
            for room in new_rooms - state.rooms:
                self.socketio.server.enter_room(request.sid, room, namespace="/")
        state.rooms, state.symbols = new_rooms, symbols
        return {"symbols": sorted(symbols) if symbols else None}

    def _send(self, sid: str, event: str, data: dict) -> None:
        self.socketio.emit(event, data, to=sid, namespace="/", ignore_queue=True)

    def _queued(self, sid: str) -> int:
        """Packets waiting in the client's Engine.IO queue."""
        return compat.engineio_queue_size(self.socketio.server, sid)

    def _wait_drained(self, sid: str) -> bool:
        """Wait until the client has read most of what it was sent; False if it stopped reading."""
        deadline = time.monotonic() + DRAIN_WAIT_S
        while self._queued(sid) > MAX_QUEUED_PACKETS:
            if sid not in self.clients:
                return False
            if time.monotonic() > deadline:
                log.warning("client %s stopped reading during replay; disconnecting it", sid)
                self.socketio.server.disconnect(sid, namespace="/")
                return False
            self.socketio.sleep(0.05)
        return True

    def _wait_for_relay(self, sid: str) -> bool:
        deadline = time.monotonic() + 3600
        while self.relay.epoch is None or not self.relay.subscribed:
            if sid not in self.clients or time.monotonic() > deadline:
                return False
            self.socketio.sleep(0.1)
        return True

    def attach(self, sid: str, state: ClientState, since: int | None, epoch: object) -> None:
        """Send welcome, replay seq > since from history, then join the live rooms with no gap."""
        if not self._wait_for_relay(sid):
            return
        relay = self.relay
        self._send(sid, EVENT_WELCOME, {"epoch": relay.epoch, "seq": relay.last_seq})
        if since is not None:
            try:
                self._replay(sid, state, since, epoch)
            except redis.RedisError as exc:
                log.warning("replay to %s failed (%s); it joins live", sid, exc)
        if sid in self.clients and self.socketio.server.manager.is_connected(sid, "/"):
            # No yield between the relay cursor check in _replay and this join.
            for room in state.rooms:
                self.socketio.server.enter_room(sid, room, namespace="/")
            state.live = True

    def _replay(self, sid: str, state: ClientState, cursor: int, epoch: object) -> None:
        relay = self.relay
        if epoch not in (None, "", relay.epoch):
            self._send(sid, EVENT_RESYNC, {"epoch": relay.epoch})
            cursor = 0
        deadline = time.monotonic() + RELAY_WAIT_S
        while cursor > relay.last_seq:
            # A cursor ahead of this relay: wait for the relay, or resync if history never had it.
            stored_epoch, stored_seq = history.cursor(self.client)
            if cursor > stored_seq or stored_epoch != relay.epoch or time.monotonic() > deadline:
                self._send(sid, EVENT_RESYNC, {"epoch": relay.epoch})
                cursor = 0
                break
            self.socketio.sleep(0.02)
        current_epoch = relay.epoch
        while sid in self.clients:
            target = relay.last_seq
            if relay.epoch != current_epoch:
                self._send(sid, EVENT_RESYNC, {"epoch": relay.epoch})
                current_epoch, cursor = relay.epoch, 0
                continue
            if cursor >= target:
                return  # caller joins the rooms before anything else runs
            if not self._wait_drained(sid):
                return
            batch = history.read_entries(self.client, cursor, target, count=MAX_QUEUED_PACKETS)
            if not batch:
                cursor = target  # trimmed out of history: nothing left to send
                continue
            for _seq, signal in batch:
                if signal is not None and (state.symbols is None or signal.get("symbol") in state.symbols):
                    self._send(sid, EVENT_NEW_SIGNAL, signal)
                    metrics.SIGNALS_REPLAYED.inc()
            cursor = batch[-1][0]
