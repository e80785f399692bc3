"""Running a coroutine from a synchronous test, whatever loop the calling thread already runs."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor


def run(coroutine):
    """Run COROUTINE to its end on a new event loop in a thread of its own; its result (or its exception).

    asyncio.run refuses a thread with a running loop, and Playwright's sync API (the dashboard tests' session
    browser) leaves one running in the main thread for the rest of the session.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="test-loop") as pool:
        return pool.submit(asyncio.run, coroutine).result()
