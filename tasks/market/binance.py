"""Binance REST klines over one pooled session with bounded retries and a strict payload check."""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader

from backend.compat import MaxWaitRetry
from tasks.market.base import MarketDataError, MarketSource, check_limit
from tasks.market.candles import Candles, timeframe_ms

BINANCE_API_URL = "https://api.binance.com"
KLINES_PATH = "/api/v3/klines"
MAX_KLINES = 1000  # Binance's most klines per request; one is spent on the still-open bar
RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})
STALE_BARS = 2  # the newest closed bar may have ended at most this many bars ago
_PRICE_FIELDS = ("open", "high", "low", "close")


class _ExchangeRetry(MaxWaitRetry):
    """MaxWaitRetry that also honours Retry-After on 418 (Binance's ban) and ignores a garbled Retry-After."""

    RETRY_AFTER_STATUS_CODES = frozenset({413, 418, 429, 503})

    def get_retry_after(self, response) -> float | None:
        """The server's Retry-After in seconds, None when absent or garbled (the exponential backoff applies)."""
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None


def build_session(
    pool_size: int = 32, retries: int = 3, backoff: float = 0.2, max_retry_after: float = 5.0
) -> requests.Session:
    """A requests.Session with a connection pool for `pool_size` threads and bounded retries.

    Retries cover connection errors, timeouts and HTTP 418/429/5xx, sleeping `backoff` * 2**n
    (0, 0.4, 0.8 s by default) or the server's Retry-After when it is at most `max_retry_after` s.
    """
    retry = _ExchangeRetry(
        total=retries,
        backoff_factor=backoff,
        backoff_max=2.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,  # the last 429/5xx response comes back so its status can be reported
        respect_retry_after_header=True,
        max_wait=max_retry_after,
    )
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "quantum-signals/1"
    return session


class BinanceSource(MarketSource):
    """Closed klines from Binance's public REST API (or any server speaking its klines format)."""

    name = "binance"

    def __init__(
        self,
        api_url: str,
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 10,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._own_session = session is None
        self.session = build_session() if session is None else session
        self.timeout = (connect_timeout, read_timeout)

    def fetch(self, symbol: str, timeframe: str, limit: int, now_ms: int | None = None) -> Candles:
        """The last `limit` closed klines; the still-open bar (closeTime >= now_ms) is dropped."""
        check_limit(limit, MAX_KLINES - 1)
        params = {"symbol": symbol, "interval": timeframe, "limit": limit + 1}
        url = self.api_url + KLINES_PATH
        where = f"GET {url}?{urlencode(params)}"
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MarketDataError(f"{where} failed: {self._describe(exc)}") from exc
        if response.status_code in (418, 429):
            retry_after = response.headers.get("Retry-After", "not given")
            what = "IP banned" if response.status_code == 418 else "rate-limited"
            raise MarketDataError(
                f"{where}: {what} (HTTP {response.status_code}, Retry-After: {retry_after} s); "
                "fewer SYMBOLS or a longer SCAN_INTERVAL lowers the request weight"
            )
        if response.status_code != 200:
            retry_after = response.headers.get("Retry-After")
            hint = f", Retry-After: {retry_after} s" if retry_after else ""
            raise MarketDataError(f"{where}: HTTP {response.status_code} {_error_text(response)}{hint}")
        try:
            payload = response.json()
        except ValueError:
            raise MarketDataError(f"{where}: the response is not JSON: {response.text[:120]!r}") from None
        candles = parse_klines(payload, where)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        closed = candles[: int(np.searchsorted(candles.close_time, now_ms, side="left"))].tail(limit)
        # The newest closed bar must be the one that just closed: older data is a lagging API, not the market.
        if len(closed) and now_ms - int(closed.close_time[-1]) > STALE_BARS * timeframe_ms(timeframe):
            age = (now_ms - int(closed.close_time[-1])) / 1000
            raise MarketDataError(f"{where}: stale data: the newest closed bar ended {age:g} s ago")
        return closed

    def close(self) -> None:
        """Close the session if this source created it."""
        if self._own_session:
            self.session.close()

    def _describe(self, exc: requests.RequestException) -> str:
        # requests reports a read timeout after exhausted retries as a ConnectionError; look at the cause.
        reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else exc
        if isinstance(exc, requests.Timeout) or "timed out" in str(reason).lower():
            return f"timed out (connect {self.timeout[0]:g} s, read {self.timeout[1]:g} s, retries exhausted): {reason}"
        if isinstance(exc, requests.ConnectionError):
            return f"could not connect (retries exhausted): {reason}"
        return f"{type(exc).__name__}: {reason}"


def _error_text(response: requests.Response) -> str:
    """Binance's {"code": ..., "msg": ...} error, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return repr(response.text[:120])
    if isinstance(body, dict) and "msg" in body:
        return f"(code {body.get('code')}: {body['msg']})"
    return repr(response.text[:120])


def parse_klines(payload: object, where: str) -> Candles:
    """Check Binance klines ([openTime, "open", "high", "low", "close", "volume", closeTime, ...]) and convert them."""
    if not isinstance(payload, list):
        raise MarketDataError(f"{where}: expected a JSON list of klines, got {type(payload).__name__}")
    if not payload:
        raise MarketDataError(f"{where}: no klines in the answer; check that the symbol is listed and trading")
    n = len(payload)
    times = np.empty((n, 2), dtype=np.int64)
    values = np.empty((n, 5), dtype=np.float64)
    previous_close_time = None
    for i, row in enumerate(payload):
        if not isinstance(row, list) or len(row) < 7:
            raise MarketDataError(
                f"{where}: kline {i} is not a list [openTime, open, high, low, close, volume, closeTime, …]: "
                f"{row!r:.100}"
            )
        open_time, close_time = _time(row[0], "openTime", i, where), _time(row[6], "closeTime", i, where)
        o, h, l, c = (_number(row[j + 1], _PRICE_FIELDS[j], i, where) for j in range(4))
        volume = _number(row[5], "volume", i, where)
        if min(o, h, l, c) <= 0 or volume < 0:
            raise MarketDataError(f"{where}: kline {i} has a non-positive price or negative volume: {row[:7]!r}")
        if h < max(o, c, l) or l > min(o, c):
            raise MarketDataError(f"{where}: kline {i} has high/low outside open/close: {row[:7]!r}")
        if close_time <= open_time or (previous_close_time is not None and open_time <= previous_close_time):
            raise MarketDataError(
                f"{where}: kline {i} times are not increasing: openTime {open_time}, closeTime {close_time}"
            )
        previous_close_time = close_time
        times[i] = open_time, close_time
        values[i] = o, h, l, c, volume
    return Candles(times[:, 0], values[:, 0], values[:, 1], values[:, 2], values[:, 3], values[:, 4], times[:, 1])


def _time(value: object, field: str, i: int, where: str) -> int:
    if type(value) is not int or value < 0:
        raise MarketDataError(f"{where}: kline {i} field {field} must be an integer of epoch ms, got {value!r}")
    return value


def _number(value: object, field: str, i: int, where: str) -> float:
    # Binance sends decimals as strings; plain JSON numbers are accepted too, booleans are not.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MarketDataError(f"{where}: kline {i} field {field} must be a decimal string, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise MarketDataError(f"{where}: kline {i} field {field} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise MarketDataError(f"{where}: kline {i} field {field} is not finite: {value!r}")
    return number
