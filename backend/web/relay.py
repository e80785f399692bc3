"""The relay: Redis channel → Socket.IO `new_signal`, numbered by seq, caught up from history."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
import socketio
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from backend import history
from backend.outcomes import decode_announcement, outcome_payload
from backend.redis_client import make_async_redis
from backend.settings import Settings
from backend.signal_schema import (
    EPOCH_KEY,
    EVENT_NEW_SIGNAL,
    EVENT_RESYNC,
    EVENT_SIGNAL_OUTCOME,
    InvalidSignal,
    outcome_channel,
    outcome_key,
    parse_signal,
)
from backend.web import metrics

if TYPE_CHECKING:
    from backend.web.broadcast import Broadcaster

log = logging.getLogger(__name__)

NAMESPACE = "/"
ALL_ROOM = "all"
IDLE_WAKE_S = 1.0
MAX_BURST = 500
# Messages read off the subscription and not relayed yet. When the relay falls this far behind, the reader
# stops reading: Redis then buffers, and past its pub/sub output limit cuts the subscription, which the relay
# survives by catching up from history (as it would any lost subscription).
READ_AHEAD = 10_000
SUBSCRIBE_WAIT_S = 10.0
HEARTBEAT_STALE_S = 5.0  # readiness fails when the loop has not beaten for this long
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.2, 5.0


def symbol_room(symbol: str) -> str:
    """The room of the clients that asked for SYMBOL."""
    return f"sym:{symbol}"


class Relay:
    """Subscribes to the channel in a background task and emits each signal to this process's clients."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        settings: Settings,
        client: redis.asyncio.Redis,
        broadcaster: Broadcaster | None = None,
    ) -> None:
        """SIO is the AsyncServer; CLIENT serves history reads; BROADCASTER, if any, takes the live emits.

        BROADCASTER.emit(event, data, rooms) is a coroutine; like AsyncServer.emit it must pick its recipients
        before it first yields: the replay (backend/web/clients.py) relies on it to hand a client over to the
        live rooms with no gap and no duplicate.
        """
        self.sio = sio
        self.broadcaster = broadcaster
        self.settings = settings
        self.client = client
        self.outcome_channel = outcome_channel(settings.signal_channel)
        self.epoch: str | None = None
        self.last_seq = 0
        self.subscribed = False
        self.last_error: str | None = None
        self.heartbeat = float("-inf")
        self._backoff = BACKOFF_MIN_S
        self._stopping = False
        metrics.RELAY_SUBSCRIBED.set_function(lambda: 1.0 if self.ready() else 0.0)

    def stop(self) -> None:
        """Ask the loop to end at its next wake-up."""
        self._stopping = True

    async def run(self) -> None:
        """Subscribe, catch up, relay; after any failure back off and do it again (the loop never dies)."""
        self._backoff = BACKOFF_MIN_S
        try:
            while not self._stopping:
                self.beat()
                try:
                    await self._session()
                except (redis.RedisError, OSError) as exc:
                    self._lost(f"{type(exc).__name__}: {exc}", "relay lost Redis (%s); reconnecting")
                except Exception as exc:  # noqa: BLE001 - a bug or an input we did not foresee: restart, caught up from history
                    metrics.RELAY_RESTARTS.inc()
                    self._lost(
                        f"{type(exc).__name__}: {exc}",
                        "relay loop failed (%s); restarting it from history",
                        traceback=True,
                    )
                if not self._stopping:
                    await self._pause(self._backoff)
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        finally:  # stopped, or cancelled at shutdown
            self.subscribed = False

    def _lost(self, error: str, message: str, traceback: bool = False) -> None:
        self.last_error = error[:200]
        if self.subscribed:
            metrics.RELAY_RECONNECTS.inc()
        log.warning(message, self.last_error, exc_info=traceback)
        self.subscribed = False

    async def _pause(self, seconds: float) -> None:
        """Sleep SECONDS in steps, keeping the heartbeat fresh: backing off is alive, not hung."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            self.beat()
            await asyncio.sleep(min(left, IDLE_WAKE_S))

    def beat(self) -> None:
        """Record that the loop is alive (readiness reads it)."""
        self.heartbeat = time.monotonic()

    def alive(self) -> bool:
        """True when the loop has beaten within HEARTBEAT_STALE_S."""
        return time.monotonic() - self.heartbeat < HEARTBEAT_STALE_S

    def ready(self) -> bool:
        """Subscribed and alive: what /readyz and qs_relay_subscribed report."""
        return self.subscribed and self.alive()

    async def _session(self) -> None:
        # No retries: a lost subscription must end the session, which catches up from history; redis-py would
        # otherwise reconnect and subscribe again quietly, and what was published meanwhile would be lost.
        raw_client = make_async_redis(self.settings.redis_url, decode_responses=False, retry=Retry(NoBackoff(), 0))
        pubsub = raw_client.pubsub()
        reader = None
        try:
            await pubsub.subscribe(self.settings.signal_channel, self.outcome_channel)
            messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue(READ_AHEAD)
            # A task of its own reads the subscription with no timeout: a read cut short by one (a large message
            # half-arrived) would lose the connection, and with it the unnumbered messages published meanwhile.
            reader = asyncio.create_task(_read(pubsub, messages), name="qs-relay-reader")
            deadline = time.monotonic() + SUBSCRIBE_WAIT_S
            unconfirmed = {self.settings.signal_channel.encode(), self.outcome_channel.encode()}
            while unconfirmed:  # the subscription is live once Redis confirms it, for both channels
                self.beat()
                message = await _next_message(messages, reader, IDLE_WAKE_S)
                if message and message["type"] == "subscribe":
                    unconfirmed.discard(message["channel"])
                if unconfirmed and time.monotonic() > deadline:
                    raise redis.TimeoutError(f"no SUBSCRIBE confirmation within {SUBSCRIBE_WAIT_S:g} s")
            # Catch up only after subscribing: nothing published meanwhile falls in between.
            await self._adopt_epoch(await history.aensure_epoch(self.client))
            await self._catch_up()
            self.subscribed = True
            self._backoff = BACKOFF_MIN_S  # a failure after a good subscription starts the backoff afresh
            self.last_error = None
            log.info(
                "relay subscribed to %s (epoch %s, seq %d)", self.settings.signal_channel, self.epoch, self.last_seq
            )
            outcomes = self.outcome_channel.encode()
            while not self._stopping:
                self.beat()
                message = await _next_message(messages, reader, IDLE_WAKE_S)
                if not message:
                    continue
                # Take what else is already buffered, so one history read serves the whole burst.
                burst = [message]
                while len(burst) < MAX_BURST and not messages.empty():
                    burst.append(messages.get_nowait())
                # A confirmation now means the connection was lost and made again underneath: what was published
                # meanwhile is missing, so this session ends and the next catches up from history.
                again = next((i for i, m in enumerate(burst) if m["type"] == "subscribe"), None)
                relayed = [m for m in burst[:again] if m["type"] == "message"]
                await self.handle_many([m["data"] for m in relayed if m["channel"] != outcomes])
                await self.handle_outcomes([m["data"] for m in relayed if m["channel"] == outcomes])
                if again is not None:
                    raise redis.ConnectionError("the subscription was re-made after a lost connection")
        finally:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves PubSub.aclose unannotated
            await raw_client.aclose()

    async def _adopt_epoch(self, epoch: str) -> None:
        """Switch to EPOCH; when it replaces a known one, tell every client to resync."""
        if epoch == self.epoch:
            return
        if self.epoch is not None:
            log.warning("Redis history epoch changed from %s to %s; clients resync", self.epoch, epoch)
            await self.sio.emit(EVENT_RESYNC, {"epoch": epoch}, namespace=NAMESPACE)
        self.epoch = epoch
        self.last_seq = 0

    async def _catch_up(self, upto: int | None = None) -> None:
        """Relay from history every signal after last_seq (up to UPTO); skip and count what cannot be sent."""
        while True:
            self.beat()
            batch = await history.aread_entries(self.client, self.last_seq, upto, count=500)
            if not batch:
                return
            for seq, signal in batch:
                self.last_seq = max(self.last_seq, seq)  # always advance: one bad entry must not stall the loop
                if signal is None or signal.get("epoch") != self.epoch:
                    self._drop(f"history entry {seq} is not a signal of epoch {self.epoch}")
                    continue
                # No yield between advancing last_seq and the emit choosing its recipients (see __init__).
                await self._emit_safely(signal)

    async def handle_many(self, raws: list[bytes]) -> None:
        """Validate channel messages and relay them in order; drop and count what is not a signal.

        Numbered signals are relayed from history, never from the channel copy: anyone may publish
        on the channel, and a forged seq must not take the place of the real one. A burst of them
        costs one history read.
        """
        wanted = 0  # the highest seq announced on the channel and not relayed yet
        for raw in raws:
            try:
                signal = parse_signal(raw, self.settings.max_signal_bytes)
            except InvalidSignal as exc:
                self._drop(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a parser failure we did not foresee is still one bad message
                self._drop(f"could not be parsed ({type(exc).__name__})")
                continue
            seq, epoch = signal.get("seq"), signal.get("epoch")
            if seq is None and epoch is None:
                await self._relay_numbered(wanted)  # keep the channel's order
                wanted = 0
                await self._emit_safely(signal)  # an outside publisher's signal: live only, not in history
                continue
            if seq is None or not isinstance(epoch, str) or not epoch:
                self._drop("a signal with only one of seq and epoch")
                continue
            if epoch != self.epoch:
                await self._relay_numbered(wanted)
                wanted = 0
                current = await self.client.get(EPOCH_KEY)
                if epoch != current:
                    self._drop(f"epoch {epoch!r} is not the history's")  # forged, or numbered by a lost history
                    continue
                await self._adopt_epoch(current)
            wanted = max(wanted, seq)
        await self._relay_numbered(wanted)

    async def handle_outcomes(self, raws: list[bytes]) -> None:
        """Emit `signal_outcome` for each announced outcome that Redis holds; drop and count anything else.

        An announcement only names an outcome (epoch, seq, h): its value, id and symbol are read from the
        outcome's hash, so a message forged on the channel cannot put a made-up outcome in front of clients.
        """
        named = []
        for raw in raws:
            try:
                epoch, seq, h = decode_announcement(raw)
            except ValueError as exc:
                self._drop(str(exc), self.outcome_channel)
                continue
            except Exception as exc:  # noqa: BLE001 - a parser failure we did not foresee is still one bad message
                self._drop(f"could not be parsed ({type(exc).__name__})", self.outcome_channel)
                continue
            if epoch != self.epoch:
                self._drop(f"outcome of epoch {epoch!r}, not the history's", self.outcome_channel)
                continue
            named.append((epoch, seq, h))
        if not named:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for epoch, seq, h in named:
                pipe.hmget(outcome_key(epoch, seq), [str(h), "id", "sym"])
            stored = await pipe.execute()
        for (epoch, seq, h), (value, signal_id, symbol) in zip(named, stored):
            try:
                r = float(value)
            except (TypeError, ValueError):
                self._drop(f"no stored outcome {h} of seq {seq}", self.outcome_channel)
                continue
            rooms = [ALL_ROOM] + ([symbol_room(symbol)] if symbol else [])
            try:
                await self._broadcast(EVENT_SIGNAL_OUTCOME, outcome_payload(epoch, seq, signal_id, h, r), rooms)
            except Exception as exc:  # noqa: BLE001 - whatever one message does, the next must still go out
                self._drop(f"could not be sent ({type(exc).__name__}: {str(exc)[:100]})", self.outcome_channel)

    async def _relay_numbered(self, wanted: int) -> None:
        """Relay from history up to seq WANTED; count it as dropped if history has no such seq."""
        if wanted > self.last_seq:
            await self._catch_up(upto=wanted)
            if self.last_seq < wanted:
                self._drop(f"seq {wanted} is not in the history")

    def _drop(self, reason: str, channel: str | None = None) -> None:
        metrics.MALFORMED_DROPPED.inc()
        # rate_limited: anyone can publish junk; BoundedLogFilter keeps this to a few lines per burst
        channel = channel or self.settings.signal_channel
        log.warning("dropped a message on %s: %s", channel, reason, extra={"rate_limited": True})

    async def _emit_safely(self, signal: dict[str, Any]) -> None:
        """Emit SIGNAL; a failure drops this one signal, never the relay."""
        try:
            await self.emit(signal)
        except Exception as exc:  # noqa: BLE001 - whatever one message does, the next must still go out
            self._drop(f"could not be sent ({type(exc).__name__}: {str(exc)[:100]})")

    async def emit(self, signal: dict[str, Any]) -> None:
        """Send SIGNAL to this process's clients in the all-room and its symbol's room."""
        rooms = [ALL_ROOM]
        symbol = signal.get("symbol")
        if isinstance(symbol, str):
            rooms.append(symbol_room(symbol))
        await self._broadcast(EVENT_NEW_SIGNAL, signal, rooms)
        metrics.SIGNALS_RELAYED.inc()
        _observe_lag(signal)

    async def _broadcast(self, event: str, data: dict[str, Any], rooms: list[str]) -> None:
        """Send EVENT to this process's clients in ROOMS, each once: through the broadcaster (the fast path and the
        slow-client bound) when there is one. Outcomes go the same way as signals: a signal makes several, and
        python-socketio's own emit costs a task and a queue wake-up per client (docs/benchmarks.md)."""
        # Every web process relays to its own clients only (no Socket.IO message queue): none gets it twice.
        if self.broadcaster is not None:
            await self.broadcaster.emit(event, data, rooms)
        else:
            await self.sio.emit(event, data, to=rooms, namespace=NAMESPACE)


async def _read(pubsub: PubSub, messages: asyncio.Queue[dict[str, Any]]) -> None:
    """Move every message of PUBSUB to MESSAGES, waiting as long as it takes; end with the connection's error."""
    while True:
        message = await pubsub.get_message(timeout=None)
        if message is not None:
            await messages.put(message)


async def _next_message(
    messages: asyncio.Queue[dict[str, Any]], reader: asyncio.Task[None], wait: float
) -> dict[str, Any] | None:
    """The next message the reader took, waiting up to WAIT; raises the reader's error once it has ended."""
    if not messages.empty():
        return messages.get_nowait()
    if reader.done():
        reader.result()  # raises what ended it
        raise redis.ConnectionError("the subscription reader ended")
    getter = asyncio.ensure_future(messages.get())
    done, _ = await asyncio.wait({getter, reader}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()  # asyncio.Queue.get is safe to cancel: a message it was woken for stays queued
    if reader in done:
        reader.result()
        raise redis.ConnectionError("the subscription reader ended")
    return None


def _observe_lag(signal: dict[str, Any]) -> None:
    emitted_at = signal.get("emitted_at")
    if isinstance(emitted_at, str):
        try:
            sent = datetime.fromisoformat(emitted_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return
        metrics.RELAY_LAG.observe(max(0.0, time.time() - sent))
