"""Celery tasks: the scheduled market scan, fanned out over the workers for long symbol lists."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from celery import group
from celery.signals import worker_init
from redis.exceptions import LockError

from backend.publisher import Publisher
from backend.redis_client import make_redis
from backend.signal_schema import LAST_SCAN_KEY, SCAN_LOCK_KEY
from tasks.celery import app
from tasks.chart_keeper import ChartKeeper
from tasks.config import worker_config
from tasks.market import MarketDataError, MarketSource, UnknownMarket, make_source
from tasks.scanner import MarketScanner

log = logging.getLogger(__name__)

# The scan lock is a short lease renewed while the scan runs: a worker killed mid-scan frees it within seconds.
SCAN_LEASE_S = 3
FANOUT_CHUNK = 100


@functools.cache
def market_source() -> MarketSource:
    """This worker's market source: an exchange's markets, once loaded, are shared by the forked pool processes."""
    settings = worker_config().settings
    return make_source(settings.market_source, settings.exchange_api_url)


@worker_init.connect
def check_markets(**_: object) -> None:
    """Stop the worker at start when the exchange does not list a configured symbol or timeframe.

    An exchange that cannot be reached now is only logged: every scan tries again, and reports per symbol.
    """
    source, settings = market_source(), worker_config().settings
    try:
        source.check(settings.symbols, settings.timeframes)
    except UnknownMarket as exc:
        raise SystemExit(f"configuration error: MARKET_SOURCE={settings.market_source}: {exc}") from None
    except MarketDataError as exc:
        log.warning("could not load the markets of %s at start (%s); the scans will try again", source.name, exc)


@functools.cache
def scanner() -> MarketScanner:
    """This worker process's scanner (built after fork, on first use)."""
    config = worker_config()
    settings = config.settings
    publisher = Publisher.from_settings(settings, make_redis(settings.redis_url))
    source = market_source()
    keeper = ChartKeeper(
        publisher.client,
        config.strategies,
        settings.symbols,
        settings.timeframes,
        settings.outcome_horizons,
        settings.signal_channel,
        scan_source=source.name,
        max_entries=settings.stats_max_entries,
    )
    return MarketScanner(source, config.strategies, publisher, settings.timeframes, keeper=keeper)


@contextlib.contextmanager
def scan_lease(client: redis.Redis) -> Iterator[bool]:
    """Yield True while holding the scan lock (renewed in the background), False if another scan holds it."""
    lock = client.lock(SCAN_LOCK_KEY, timeout=SCAN_LEASE_S, blocking=False, thread_local=False)
    if not lock.acquire():
        yield False
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(SCAN_LEASE_S / 3):
            try:
                lock.extend(SCAN_LEASE_S, replace_ttl=True)
            except (LockError, redis.RedisError):
                return

    renewer = threading.Thread(target=renew, name="scan-lease", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        done.set()
        renewer.join()
        with contextlib.suppress(LockError, redis.RedisError):  # expired or unreachable: nothing to release
            lock.release()


@app.task(name="tasks.scan.scan_market")
def scan_market() -> dict[str, Any]:
    """Scan every configured symbol, unless the previous scan still runs."""
    settings = worker_config().settings
    with scan_lease(scanner().publisher.client) as held:
        if not held:
            log.info("previous scan still running; skipping this one")
            return {"skipped": True}
        symbols = list(settings.symbols)
        if len(symbols) > FANOUT_CHUNK:
            chunks = [symbols[i : i + FANOUT_CHUNK] for i in range(0, len(symbols), FANOUT_CHUNK)]
            group(scan_symbols.s(chunk) for chunk in chunks).apply_async(expires=settings.scan_interval)
            return {"fanned_out": len(chunks)}
        return scan_symbols(symbols)


@app.task(name="tasks.scan.scan_symbols")
def scan_symbols(symbols: list[str]) -> dict[str, Any]:
    """Scan SYMBOLS and record when the scan completed."""
    report = scanner().scan(symbols)
    scanner().publisher.client.set(LAST_SCAN_KEY, time.time())
    log.info(
        "scanned %d symbols × %s in %.2fs: %d new signals, %d duplicates, %d errors",
        report.symbols,
        ",".join(scanner().timeframes),
        report.seconds,
        len(report.published),
        report.duplicates,
        len(report.errors),
    )
    return {
        "symbols": report.symbols,
        "published": [s["id"] for s in report.published],
        "duplicates": report.duplicates,
        "errors": report.errors,
        "seconds": round(report.seconds, 3),
    }
