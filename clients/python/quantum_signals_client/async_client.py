"""AsyncClient: the signals of a Quantum Signals server over Socket.IO, once each, in seq order, from a cursor.

The core is python-socketio's asyncio client over websocket: no packet cap (that is long-polling's), and no
thread per packet. python-engineio starts one task per message; our handlers never await, so each runs whole
in its task's first step, and asyncio starts tasks in the order they were made: events are handled in arrival
order. The sync `Client` runs this on a loop of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
import socketio

from quantum_signals_client.cursor_file import CursorFile
from quantum_signals_client.events import Cursor, Event, Resync, Signal
from quantum_signals_client.stream_state import Item, Position, StreamState

log = logging.getLogger("quantum_signals_client")

# A server that refuses for one of these reasons refuses every retry too: the caller must change something.
FATAL_REFUSALS = ("unauthorized", "bad request")


class ClientError(Exception):
    """The client cannot go on (raised from the iteration)."""


class ConnectionRefused(ClientError):
    """The server refused the connection for a reason no retry can fix (a wrong token, a bad symbol)."""


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: FIRST seconds doubling up to CAP, each drawn from its upper half (equal jitter)."""

    first: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect ATTEMPT (0 for the first after a good connection)."""
        ceiling = min(self.cap, self.first * 2 ** min(attempt, 32))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_CLOSED = object()


class AsyncClient:
    """Iterate it (`async for event in client`) for `Signal`s, `Resync`s and (OUTCOMES=True) `Outcome`s.

    URL: the server's base URL (http:// or https://). TOKEN: a read token when the server requires one.
    SYMBOLS: only these symbols' signals (default: all). CURSOR: the cursor file (None: keep none); a bot
    resumes after the last signal it finished, with no gap and no repeat. SINCE: where to start when there is
    no cursor file yet (0: every retained signal; default None: the live stream from now on).

    A signal counts as finished when the loop asks for the next event, when `commit()` is called, or when an
    `async with` block ends without an exception; its (epoch, seq) is then saved atomically. A signal that
    was yielded but not finished comes again after a restart (at least once to the caller; exactly once when
    it finishes them). The connection is re-made forever, with backoff and jitter, until `close()`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        symbols: Iterable[str] | None = None,
        cursor: str | os.PathLike[str] | None = "bot.cursor",
        since: int | None = None,
        outcomes: bool = False,
        transports: Iterable[str] = ("websocket",),
        backoff: Backoff = Backoff(),
        connect_timeout: float = 10.0,
    ):
        """Check the arguments and read the cursor file; nothing connects until the iteration starts."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be the server's http:// or https:// base URL, not {url!r}")
        symbols = _symbol_list(symbols)
        if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
            raise ValueError(f"since must be a seq (an integer >= 0) or None, not {since!r}")
        transports = tuple(transports)
        if not transports or not set(transports) <= {"websocket", "polling"}:
            raise ValueError(f"transports must name 'websocket' and/or 'polling', not {transports!r}")
        if "polling" in transports:
            # Long-polling answers may hold more packets than engine.io's default cap of 16 (a replay).
            import engineio.payload

            engineio.payload.Payload.max_decode_packets = max(engineio.payload.Payload.max_decode_packets, 100_000)
        self.url, self.token, self.symbols, self.outcomes = url, token, symbols, outcomes
        self.transports, self.backoff, self.connect_timeout = transports, backoff, connect_timeout
        self.cursor_file = CursorFile(cursor) if cursor is not None else None
        saved = self.cursor_file.load() if self.cursor_file else None
        # What was received (queued) is where a reconnect resumes; the file holds what was finished.
        self._state = StreamState(saved.epoch, saved.seq) if saved else StreamState(None, since)
        self._finished: Cursor | None = saved
        self._pending: Cursor | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._sio: socketio.AsyncClient | None = None
        self._welcomed = False
        self._closed = False

    @property
    def cursor(self) -> Cursor | None:
        """The cursor of the last finished signal (what the cursor file holds)."""
        return self._finished

    def __aiter__(self) -> AsyncClient:
        """The client is its own iterator."""
        return self

    async def __anext__(self) -> Event:
        """Finish the previous event, then wait for the next one."""
        self.commit()
        if self._closed:
            raise StopAsyncIteration
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="quantum-signals-client")
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                raise StopAsyncIteration
            if isinstance(item, _Failure):
                self._closed = True
                raise item.error
            if isinstance(item, Position):
                self._save(item.cursor)
                continue
            self._pending = item.cursor if isinstance(item, Signal | Resync) else None
            return item

    def commit(self) -> None:
        """Mark the last event yielded as finished: save its cursor now (the loop does it on the next event)."""
        if self._pending is not None:
            self._save(self._pending)
            self._pending = None

    async def subscribe(self, symbols: Iterable[str] | None) -> list[str] | None:
        """Change the symbol filter (None: every symbol), now and for every reconnect; the server's list.

        Raises ClientError with the server's reason when it refuses the filter.
        """
        self.symbols = _symbol_list(symbols)
        sio = self._sio
        if sio is None or not sio.connected:
            return self.symbols  # sent with the next connect
        ack = await sio.call("subscribe", {"symbols": self.symbols}, timeout=self.connect_timeout)
        if not isinstance(ack, dict) or "error" in ack:
            raise ClientError(f"the server refused subscribe {self.symbols!r}: {ack}")
        return ack.get("symbols")

    async def close(self) -> None:
        """Disconnect and end the iteration; the cursor file keeps the last finished signal."""
        self._closed = True
        self._queue.put_nowait(_CLOSED)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sio is not None and self._sio.connected:
            await self._sio.disconnect()

    async def __aenter__(self) -> AsyncClient:
        """Use as `async with AsyncClient(...) as client:`."""
        return self

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        """Finish the last event unless the block raised, then close."""
        if exc_type is None:
            self.commit()
        await self.close()

    def _save(self, cursor: Cursor) -> None:
        if self.cursor_file is not None:
            self.cursor_file.save(cursor)
        self._finished = cursor

    def _auth(self) -> dict:
        """Connect auth: the token, the filter, and the cursor of what was received so far."""
        auth: dict = {}
        if self.token is not None:
            auth["token"] = self.token
        if self.symbols is not None:
            auth["symbols"] = self.symbols
        return {**auth, **self._state.connect_auth()}

    async def _run(self) -> None:
        """Connect, wait for the disconnect, back off, again: until closed or refused for good."""
        attempt = 0
        try:
            while not self._closed:
                try:
                    if await self._connect_once():
                        attempt = 0
                except (TimeoutError, OSError, aiohttp.ClientError) as exc:
                    log.warning("connection to %s failed: %r", self.url, exc)
                delay = self.backoff.delay(attempt)
                attempt += 1
                log.info("reconnecting to %s in %.1f s", self.url, delay)
                await asyncio.sleep(delay)
        except ClientError as exc:
            self._queue.put_nowait(_Failure(exc))
        except Exception as exc:  # noqa: BLE001 - raised to the caller, not lost in a task nobody awaits
            self._queue.put_nowait(_Failure(ClientError(f"the connection loop failed: {exc!r}")))

    async def _connect_once(self) -> bool:
        """One connection, until it drops; True if the server welcomed it (the backoff then starts again)."""
        # Our own HTTP session, closed here whatever happens: python-engineio leaves its own one to the garbage
        # collector, which printed "Unclosed client session" on the bot's output at exit (Python 3.13).
        session = aiohttp.ClientSession()
        try:
            return await self._connect_with(socketio.AsyncClient(reconnection=False, http_session=session))
        finally:
            await session.close()

    async def _connect_with(self, sio: socketio.AsyncClient) -> bool:
        """One connection of SIO, until it drops; True if the server welcomed it."""
        refusals: list[object] = []
        disconnected = asyncio.Event()
        sio.on("welcome", lambda data: self._handle(self._state.welcome(data), welcome=True))
        sio.on("new_signal", lambda data: self._handle(self._state.signal(data)))
        sio.on("resync", lambda data: self._handle(self._state.resync(data)))
        if self.outcomes:
            sio.on("signal_outcome", lambda data: self._handle(self._state.outcome(data)))
        sio.on("connect_error", refusals.append)
        sio.on("disconnect", lambda *_reason: disconnected.set())
        self._sio, self._welcomed = sio, False
        try:
            await sio.connect(
                self.url, auth=self._auth(), transports=list(self.transports), wait_timeout=self.connect_timeout
            )
        except socketio.exceptions.ConnectionError as exc:
            reason = _refusal_reason(refusals) or str(exc)
            if reason.startswith(FATAL_REFUSALS):
                raise ConnectionRefused(f"{self.url} refused the connection: {reason}") from None
            log.warning("cannot connect to %s: %s", self.url, reason)
            await sio.disconnect()
            return False
        # The disconnect event is not sent for a drop during connect(); the end of sio.wait() covers that.
        waits = {asyncio.ensure_future(disconnected.wait()), asyncio.ensure_future(sio.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await sio.disconnect()
        log.warning("disconnected from %s", self.url)
        return self._welcomed

    def _handle(self, items: list[Item], welcome: bool = False) -> None:
        """Queue what an event yields; never awaits (arrival order, see the module's docstring)."""
        self._welcomed = self._welcomed or welcome
        for item in items:
            self._queue.put_nowait(item)


def _symbol_list(symbols: Iterable[str] | None) -> list[str] | None:
    """SYMBOLS as a list; a lone string is refused (it would be read as a list of characters)."""
    if symbols is None:
        return None
    if isinstance(symbols, str):
        raise ValueError(f"symbols must be a list of symbols, not the string {symbols!r}: use [{symbols!r}]")
    return list(symbols)


def _refusal_reason(refusals: list[object]) -> str | None:
    """The server's reason in a connect_error payload ({"message": ...}), if it gave one."""
    for data in refusals:
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data["message"]
        if isinstance(data, str):
            return data
    return None
