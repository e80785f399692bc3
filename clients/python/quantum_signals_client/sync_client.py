"""Client: the AsyncClient for plain `for` loops, run on an event loop in a background thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from quantum_signals_client.async_client import AsyncClient
from quantum_signals_client.events import Cursor, Event

T = TypeVar("T")


class Client:
    """`for event in Client(url, token=..., symbols=[...], cursor="bot.cursor"):` — see AsyncClient.

    Each event comes from the one background loop in arrival order; the caller's thread only waits for it.
    """

    def __init__(self, url: str, **options: Any):
        """Check the arguments and read the cursor file (errors are raised here); connects on the first event."""
        self._core = AsyncClient(url, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def cursor(self) -> Cursor | None:
        """The cursor of the last finished signal (what the cursor file holds)."""
        return self._core.cursor

    def __iter__(self) -> Client:
        """The client is its own iterator."""
        return self

    def __next__(self) -> Event:
        """Finish the previous event, then wait for the next one."""
        if self._closed:
            raise StopIteration
        try:
            return self._call(self._core.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def commit(self) -> None:
        """Mark the last event yielded as finished: save its cursor now."""
        if self._loop is None:
            self._core.commit()
        else:
            self._call(_run(self._core.commit))

    def subscribe(self, symbols: Iterable[str] | None) -> list[str] | None:
        """Change the symbol filter (None: every symbol), now and for every reconnect; the server's list."""
        return self._call(self._core.subscribe(symbols))

    def close(self) -> None:
        """Disconnect, end the iteration and stop the background loop."""
        self._closed = True
        if self._loop is None:
            return
        self._call(self._core.close())
        # A thread still waiting in next() gets its StopIteration before the loop stops.
        self._call(_settle())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Client:
        """Use as `with Client(...) as client:`."""
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        """Finish the last event unless the block raised, then close."""
        if exc_type is None and self._loop is not None:
            self.commit()
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run COROUTINE on the background loop (started on first use) and wait for its result."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="quantum-signals-client", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


async def _settle() -> None:
    """Wait (at most 5 s) for every other task on this loop to end."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=5)


async def _run(function: Callable[[], T]) -> T:
    """FUNCTION called on the loop's thread, so it never races the loop's own work."""
    return function()
