"""Any exchange ccxt lists: closed candles from fetch_ohlcv, markets loaded once, ccxt's errors mapped to the scan's."""

from __future__ import annotations

import difflib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt
import numpy as np
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from tasks.market.base import MarketDataError, MarketSource, UnknownMarket, check_limit
from tasks.market.candles import Candles, timeframe_ms

MAX_OHLCV = 1000  # most exchanges' largest page; one bar is spent on the still-open bar
STALE_BARS = 2  # the newest closed bar may have ended at most this many bars ago
LOAD_RETRY_S = 5.0  # after a failed load_markets, the next attempt waits this long


def check_exchange_id(exchange_id: str) -> None:
    """Raise UnknownMarket naming EXCHANGE_ID and the close matches when ccxt does not list it."""
    if exchange_id not in ccxt.exchanges:
        raise UnknownMarket(f"ccxt has no exchange {exchange_id!r}{_suggest(exchange_id, ccxt.exchanges)}")


def rebase_urls(urls: object, base_url: str) -> object:
    """URLS (ccxt's exchange.urls['api'], nested dicts of URLs) with scheme, host and port of BASE_URL, paths kept."""
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        base = urlsplit(base_url)
        return urlunsplit(urlsplit(urls)._replace(scheme=base.scheme, netloc=base.netloc))
    return urls


class WeightBudget:
    """A token bucket shared by every thread: requests spend their weight, which refills at `per_minute`."""

    def __init__(self, per_minute: float) -> None:
        self.per_second = per_minute / 60
        self.capacity = float(per_minute)
        self._tokens = self.capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, cost: float | None = None) -> None:
        """Spend COST (default 1), sleeping first when the bucket is short; a waiter reserves its share at once."""
        cost = 1.0 if cost is None else float(cost)
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.per_second)
            self._at = now
            self._tokens -= cost
            wait = -self._tokens / self.per_second if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class CcxtSource(MarketSource):
    """Closed candles of any ccxt exchange over its synchronous (requests) API, safe to call from many threads.

    ccxt instances are not documented thread-safe, so each request borrows one from a pool; all share the markets
    loaded once by the first. ccxt's own throttle spaces one instance's calls by `rateLimit` ms (25 s for 500
    symbols); it is replaced by one WeightBudget per source, whose default is ccxt's figure for the exchange per
    minute (60000 / rateLimit ms) spent as a burst: a scan is as fast as the network, within the exchange's limit.
    """

    def __init__(
        self,
        exchange_id: str,
        api_url: str = "",
        timeout_s: float = 4.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_retry_after: float = 5.0,
        market_types: Iterable[str] = ("spot",),
        weight_per_minute: float | None = None,
    ) -> None:
        check_exchange_id(exchange_id)
        self.name = exchange_id
        self.exchange_class = getattr(ccxt, exchange_id)
        self.api_url, self.timeout_s, self.market_types = api_url, timeout_s, tuple(market_types)
        self.retries, self.backoff, self.max_retry_after = retries, backoff, max_retry_after
        self._markets = self._new_exchange()  # the one that loads the markets; never used for candles
        self.budget = WeightBudget(weight_per_minute or 60_000 / max(self._markets.rateLimit, 1))
        self._pool: queue.SimpleQueue[ccxt.Exchange] = queue.SimpleQueue()
        self._load_lock = threading.Lock()
        self._loaded = False
        self._load_error: tuple[float, MarketDataError] | None = None

    def _new_exchange(self) -> ccxt.Exchange:
        exchange = self.exchange_class({"enableRateLimit": True, "timeout": int(self.timeout_s * 1000)})
        fetch_markets = exchange.options.get("fetchMarkets")
        if isinstance(fetch_markets, dict) and "types" in fetch_markets:
            fetch_markets["types"] = list(self.market_types)
        if self.api_url:
            exchange.urls["api"] = rebase_urls(exchange.urls["api"], self.api_url)
        return exchange

    @property
    def timeframes(self) -> dict[str, str]:
        """The exchange's timeframes, as ccxt names them (empty when ccxt does not say)."""
        return dict(self._markets.timeframes or {})

    def load_markets(self) -> dict[str, Any]:
        """The exchange's markets, fetched by the first caller in this process only; MarketDataError when it fails.

        After a failure, callers get the same error for LOAD_RETRY_S without a request: the threads of a scan
        against an unreachable exchange fail at once instead of each waiting out its own retries.
        """
        with self._load_lock:
            if not self._loaded:
                if self._load_error is not None and time.monotonic() - self._load_error[0] < LOAD_RETRY_S:
                    raise self._load_error[1]
                try:
                    self._call(self._markets, self._markets.load_markets, f"{self.name} load_markets")
                except MarketDataError as exc:
                    self._load_error = (time.monotonic(), exc)
                    raise
                finally:  # no open connection is inherited by the processes a Celery worker forks after this
                    self._markets.session.close()
                self._loaded = True
        return self._markets.markets

    def check(self, symbols: Iterable[str], timeframes: Iterable[str], threads: int = 32) -> None:
        """Raise UnknownMarket naming every symbol or timeframe the exchange does not list, with close matches.

        Then build the instances THREADS fetch threads will borrow (before a Celery worker forks, so no scan pays
        for them); they hold no connection yet.
        """
        known_timeframes = self.timeframes
        problems = [
            f"timeframe {t!r} is not offered by {self.name}; it offers {', '.join(known_timeframes)}"
            for t in timeframes
            if known_timeframes and t not in known_timeframes
        ]
        self.load_markets()
        for symbol in symbols:
            try:
                self.unified(symbol)
            except UnknownMarket as exc:
                problems.append(str(exc))
        if problems:
            raise UnknownMarket("; ".join(problems))
        for _ in range(threads - self._pool.qsize()):
            self._pool.put(self._pooled())

    def unified(self, symbol: str) -> str:
        """ccxt's unified symbol of SYMBOL, given unified (BTC/USDT) or as the exchange's market id (BTCUSDT)."""
        markets = self.load_markets()
        if symbol in markets:
            return symbol
        by_id = self._markets.markets_by_id or {}
        if symbol in by_id:
            return by_id[symbol][0]["symbol"]
        names = [*markets, *by_id]
        raise UnknownMarket(
            f"{self.name} lists no market {symbol!r} (types {', '.join(self.market_types)}){_suggest(symbol, names)}"
        )

    def fetch(self, symbol: str, timeframe: str, limit: int, now_ms: int | None = None) -> Candles:
        """The last `limit` closed bars; the still-open bar (open time + timeframe > now_ms) is dropped."""
        check_limit(limit, MAX_OHLCV - 1)
        market = self.unified(symbol)
        bar_ms = timeframe_ms(timeframe)
        where = f"{self.name} fetch_ohlcv({market!r}, {timeframe!r}, limit={limit + 1})"
        exchange = self._borrow()
        try:
            rows = self._call(exchange, lambda: exchange.fetch_ohlcv(market, timeframe, limit=limit + 1), where)
        finally:
            self._pool.put(exchange)
        candles = parse_ohlcv(rows, bar_ms, where)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        closed = candles[: int(np.searchsorted(candles.close_time, now_ms, side="left"))].tail(limit)
        # The newest closed bar must be the one that just closed: older data is a lagging API, not the market.
        if len(closed) and now_ms - int(closed.close_time[-1]) > STALE_BARS * bar_ms:
            age = (now_ms - int(closed.close_time[-1])) / 1000
            raise MarketDataError(f"{where}: stale data: the newest closed bar ended {age:g} s ago")
        return closed

    def close(self) -> None:
        """Close every pooled instance's HTTP session."""
        while True:
            try:
                self._pool.get_nowait().session.close()
            except queue.Empty:
                break
        self._markets.session.close()

    def _borrow(self) -> ccxt.Exchange:
        """An idle instance of the pool, or a new one sharing the loaded markets."""
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._pooled()

    def _pooled(self) -> ccxt.Exchange:
        """A new instance sharing the loaded markets and the weight budget."""
        exchange = self._new_exchange()
        exchange.set_markets_from_exchange(self._markets)
        exchange.throttle = self.budget.take  # the shared weight budget instead of the per-instance spacing
        return exchange

    def _call(self, exchange: ccxt.Exchange, call: Callable[[], Any], where: str) -> Any:
        """CALL() with retries: rate limits back off (Retry-After honoured), network faults retry, the rest raise."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                return call()
            except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
                retry_after = _retry_after(exchange)
                if last or (retry_after is not None and retry_after > self.max_retry_after):
                    raise MarketDataError(
                        f"{where}: rate-limited ({_short(exc)}; Retry-After: "
                        f"{'not given' if retry_after is None else f'{retry_after:g}'} s); fewer SYMBOLS or "
                        "TIMEFRAME entries or a longer SCAN_INTERVAL lowers the request weight"
                    ) from None
                time.sleep(self._backoff(attempt) if retry_after is None else retry_after)
            except ccxt.BadResponse as exc:  # an answer ccxt could not read
                raise MarketDataError(f"{where}: malformed answer ({type(exc).__name__}: {_short(exc)})") from None
            except ccxt.OperationFailed as exc:  # NetworkError: ExchangeNotAvailable (5xx), RequestTimeout, …
                if last:
                    what = "timed out" if isinstance(exc, ccxt.RequestTimeout) else "failed"
                    raise MarketDataError(
                        f"{where} {what} {self.retries + 1} times "
                        f"(timeout {self.timeout_s:g} s each): {type(exc).__name__}: {_short(exc)}"
                    ) from None
                time.sleep(self._backoff(attempt))
            except ccxt.BadSymbol as exc:
                raise UnknownMarket(
                    f"{where}: {self.name} does not know the symbol ({_short(exc)}); check SYMBOLS"
                ) from None
            except ccxt.BaseError as exc:  # BadResponse, other ExchangeErrors: the answer is not usable
                raise MarketDataError(f"{where}: {type(exc).__name__}: {_short(exc)}") from None
            except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
                # ccxt parses whatever came back; a garbled body (e.g. truncated JSON) fails inside its parser.
                raise MarketDataError(f"{where}: malformed answer ({type(exc).__name__}: {_short(exc)})") from None

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * 2**attempt if attempt else 0.0, 2.0)


def parse_ohlcv(rows: object, bar_ms: int, where: str) -> Candles:
    """Check ccxt's [[open time ms, open, high, low, close, volume], …] and convert them; close time is derived.

    The checks run on numpy arrays (a scan parses a thousand answers); an error names the first bad candle.
    """
    if not isinstance(rows, list):
        raise MarketDataError(f"{where}: expected a list of candles, got {type(rows).__name__}")
    if not rows:
        raise MarketDataError(f"{where}: no candles in the answer; check that the symbol is listed and trading")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 6 or type(row[0]) is not int:
            raise MarketDataError(f"{where}: candle {i} is not [time ms, open, high, low, close, volume]: {row!r:.100}")
    times = np.array([row[0] for row in rows], dtype=np.int64)
    try:  # ccxt gives floats, or None for a value it could not read (nan here)
        values = np.array([row[1:6] for row in rows], dtype=np.float64)
    except (TypeError, ValueError):
        values = np.full((len(rows), 5), np.nan)
    o, h, l, c, volume = values.T
    problems = (
        (times < 0) | (np.diff(times, prepend=-1) <= 0),
        ~np.isfinite(values).all(axis=1),
        (np.minimum.reduce([o, h, l, c]) <= 0) | (volume < 0),
        (h < np.maximum.reduce([o, c, l])) | (l > np.minimum(o, c)),
    )
    texts = (
        "time is not increasing epoch ms",
        "has a missing or non-finite value",
        "has a non-positive price or negative volume",
        "has high/low outside open/close",
    )
    for bad, text in zip(problems, texts):
        if bad.any():
            i = int(np.argmax(bad))
            raise MarketDataError(f"{where}: candle {i} {text}: {rows[i][:6]!r}")
    return Candles(times, o, h, l, c, volume, times + bar_ms - 1)


def _retry_after(exchange: ccxt.Exchange) -> float | None:
    """The last answer's Retry-After in seconds (urllib3 parses seconds and HTTP dates), None when absent."""
    value = (exchange.last_response_headers or {}).get("Retry-After")
    if value is None:
        return None
    try:
        return Retry().parse_retry_after(value)
    except InvalidHeader:  # a garbled header: the exponential backoff applies
        return None


def _suggest(name: str, choices: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(dict.fromkeys(choices)), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""


def _short(exc: BaseException) -> str:
    return str(exc)[:200]
