"""The relay: Redis channel → Socket.IO `new_signal`, numbered by seq, caught up from history."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import redis

from backend import history
from backend.redis_client import make_redis
from backend.settings import Settings
from backend.signal_schema import EPOCH_KEY, EVENT_NEW_SIGNAL, EVENT_RESYNC, InvalidSignal, parse_signal
from backend.web import metrics

log = logging.getLogger(__name__)

ALL_ROOM = "all"
IDLE_WAKE_S = 1.0
MAX_BURST = 500


def symbol_room(symbol: str) -> str:
    """The room of the clients that asked for SYMBOL."""
    return f"sym:{symbol}"


class Relay:
    """Subscribes to the channel in a background task and emits each signal to this process's clients."""

    def __init__(self, socketio, settings: Settings, client: redis.Redis):
        """SOCKETIO is the extension; CLIENT serves history reads."""
        self.socketio = socketio
        self.settings = settings
        self.client = client
        self.epoch: str | None = None
        self.last_seq = 0
        self.subscribed = False
        self.last_error: str | None = None
        self._stopping = False
        self._pubsub = None

    def start(self) -> None:
        """Run the relay loop as a background task of the Socket.IO server."""
        self.socketio.start_background_task(self.run)

    def stop(self) -> None:
        """Ask the loop to end at its next wake-up."""
        self._stopping = True

    def run(self) -> None:
        """Subscribe, catch up, relay; on a Redis failure back off and do it again."""
        backoff = 0.2
        while not self._stopping:
            try:
                self._session()
            except (redis.RedisError, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.subscribed:
                    metrics.RELAY_RECONNECTS.inc()
                    log.warning("relay lost Redis (%s); reconnecting", self.last_error)
                self._set_subscribed(False)
                self.socketio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.2
        self._set_subscribed(False)

    def _set_subscribed(self, value: bool) -> None:
        self.subscribed = value
        metrics.RELAY_SUBSCRIBED.set(1 if value else 0)

    def _session(self) -> None:
        raw_client = make_redis(self.settings.redis_url, decode_responses=False)
        pubsub = raw_client.pubsub()
        try:
            pubsub.subscribe(self.settings.signal_channel)
            deadline = time.monotonic() + 10
            while True:  # the subscription is live once Redis confirms it
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "subscribe":
                    break
                if time.monotonic() > deadline:
                    raise redis.TimeoutError("no SUBSCRIBE confirmation within 10 s")
            # Catch up only after subscribing: nothing published meanwhile falls in between.
            self._adopt_epoch(history.ensure_epoch(self.client))
            self._catch_up()
            self._set_subscribed(True)
            self.last_error = None
            log.info("relay subscribed to %s (epoch %s, seq %d)", self.settings.signal_channel, self.epoch, self.last_seq)
            while not self._stopping:
                message = pubsub.get_message(timeout=IDLE_WAKE_S)
                if not message:
                    continue
                # Take what else is already buffered, so one history read serves the whole burst.
                burst = [message]
                while len(burst) < MAX_BURST and (more := pubsub.get_message(timeout=0)):
                    burst.append(more)
                self.handle_many([m["data"] for m in burst if m["type"] == "message"])
        finally:
            pubsub.close()
            raw_client.close()

    def _adopt_epoch(self, epoch: str) -> None:
        """Switch to EPOCH; when it replaces a known one, tell every client to resync."""
        if epoch == self.epoch:
            return
        if self.epoch is not None:
            log.warning("Redis history epoch changed from %s to %s; clients resync", self.epoch, epoch)
            self.socketio.emit(EVENT_RESYNC, {"epoch": epoch}, namespace="/", ignore_queue=True)
        self.epoch = epoch
        self.last_seq = 0

    def _catch_up(self, upto: int | None = None) -> None:
        """Relay from history every signal after last_seq (up to UPTO, exclusive of later ones)."""
        while True:
            batch = history.read_range(self.client, self.last_seq, upto, count=500)
            if not batch:
                return
            for signal in batch:
                if signal.get("epoch") == self.epoch and signal["seq"] > self.last_seq:
                    self.last_seq = signal["seq"]
                    self.emit(signal)

    def handle(self, raw: bytes) -> None:
        """Relay one channel message."""
        self.handle_many([raw])

    def handle_many(self, raws: list[bytes]) -> None:
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
            seq, epoch = signal.get("seq"), signal.get("epoch")
            if seq is None and epoch is None:
                wanted = self._relay_numbered(wanted)  # keep the channel's order
                self.emit(signal)  # an outside publisher's signal: live only, not in history
                continue
            if seq is None or not isinstance(epoch, str) or not epoch:
                self._drop("a signal with only one of seq and epoch")
                continue
            if epoch != self.epoch:
                wanted = self._relay_numbered(wanted)
                current = self.client.get(EPOCH_KEY)
                if epoch != current:
                    self._drop(f"epoch {epoch!r} is not the history's")  # forged, or numbered by a lost history
                    continue
                self._adopt_epoch(current)
            wanted = max(wanted, seq)
        self._relay_numbered(wanted)

    def _relay_numbered(self, wanted: int) -> int:
        """Relay from history up to seq WANTED; count it as dropped if history has no such seq."""
        if wanted > self.last_seq:
            self._catch_up(upto=wanted)
            if self.last_seq < wanted:
                self._drop(f"seq {wanted} is not in the history")
        return 0

    def _drop(self, reason: str) -> None:
        metrics.MALFORMED_DROPPED.inc()
        log.warning("dropped a message on %s: %s", self.settings.signal_channel, reason)

    def emit(self, signal: dict) -> None:
        """Send SIGNAL to this process's clients in the all-room and its symbol's room."""
        rooms = [ALL_ROOM]
        symbol = signal.get("symbol")
        if isinstance(symbol, str):
            rooms.append(symbol_room(symbol))
        # ignore_queue: every web process relays to its own clients only, so none gets it twice.
        self.socketio.emit(EVENT_NEW_SIGNAL, signal, to=rooms, namespace="/", ignore_queue=True)
        metrics.SIGNALS_RELAYED.inc()
        _observe_lag(signal)


def _observe_lag(signal: dict) -> None:
    emitted_at = signal.get("emitted_at")
    if isinstance(emitted_at, str):
        try:
            sent = datetime.fromisoformat(emitted_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return
        metrics.RELAY_LAG.observe(max(0.0, time.time() - sent))
