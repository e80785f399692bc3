"""A real Binance-compatible server on loopback, with switchable faults, for tests and benchmarks.

It serves what ccxt's binance (spot markets) calls, and a ping: ENDPOINTS.

In a test (or the `exchange` fixture: one frozen at NOW_MS):

    with ExchangeServer() as exchange:
        exchange.set_series("BTCUSDT", [100, 101, 102])   # closed bars, oldest first
        exchange.set_fault("http_500", times=1)           # the next request fails once
        CcxtSource("binance", exchange.url).fetch("BTCUSDT", "1m", 3)

As a process (benchmarks, fault suites; ExchangeProcess runs it): `python -m harness.exchange --port 8900
--latency-ms 50` prints `listening on http://127.0.0.1:8900`; `POST /_control` with JSON such as
`{"series": {"BTCUSDT": [100, 101]}, "fault": {"mode": "rate_limit_429", "retry_after": 1, "times": 2},
"latency_ms": 50, "now_ms": null, "reset_counts": true}` changes it at runtime; `GET /_control` shows
the state and the request counts per symbol.

exchangeInfo lists every symbol with a series, every symbol named in `listed` (control or set_listed) and
LISTED_DEFAULT; klines serve any well-formed symbol. The served series end with one still-open bar
(closeTime in the future) whose close is the last closed one's * 1.01, so a client that keeps it is caught.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import zlib
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from harness.ports import free_port
from harness.processes import ServerProcess

FAULTS = (
    "http_500",  # HTTP 500 with Binance's error body
    "rate_limit_429",  # HTTP 429 with Retry-After
    "ban_418",  # HTTP 418 (IP ban) with Retry-After
    "malformed_json",  # 200 with a truncated JSON body
    "empty",  # 200 with []
    "string_times",  # openTime as a string
    "nan_price",  # close "NaN"
    "negative_price",  # close "-1.5"
    "short_rows",  # klines of 5 fields
    "not_a_list",  # {"data": [...]} instead of a list
    "hang",  # answer only after hang_s (at most MAX_HANG_S), or when the server stops
)
MAX_HANG_S = 15.0
INTERVALS_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
DEFAULT_BARS = 1000
NOW_MS = 1_764_000_030_000  # a frozen clock: 30 s into the 1m bar that opened at 1_764_000_000_000
# Falling, then a jump on the last closed bar: SMA(3) crosses above SMA(5) there and only there.
CROSS_UP = [100 - i * 0.5 for i in range(30)] + [200.0]
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
# Every path a client of this server may call: ccxt's binance (load_markets, fetch_ohlcv), and the readiness ping.
ENDPOINTS = ("/api/v3/exchangeInfo", "/api/v3/klines", "/api/v3/ping", "/api/v3/time")
LISTED_DEFAULT = ("BTCUSDT", "ETHUSDT", "ETHBTC")
QUOTES = ("USDT", "USDC", "BTC", "ETH", "BNB")


@dataclass
class Fault:
    """A fault mode and whom it hits: `times` requests (None: until cleared) of `symbols` (None: all)."""

    mode: str
    times: int | None = None
    symbols: list[str] | None = None
    retry_after: int = 1
    hang_s: float = MAX_HANG_S


class ExchangeServer:
    """Serves GET /api/v3/klines like Binance from per-symbol series, plus POST/GET /_control."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0, verbose: bool = False) -> None:
        self.host, self.port = host, port
        self.latency_s = latency_s
        self.now_ms: int | None = None  # a frozen clock for the bar layout; None follows the wall clock
        self.verbose = verbose
        self._series: dict[str, tuple[float, ...]] = {}
        self._fault: Fault | None = None
        self._counts: dict[str, int] = {}
        self._listed: set[str] = set(LISTED_DEFAULT)
        self.paths: dict[str, int] = {}  # requests per path, every path asked for (unknown ones too)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (after start)."""
        if self._httpd is None:
            raise RuntimeError("the exchange server is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> ExchangeServer:
        """Bind and serve in a background thread."""
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.exchange = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="exchange-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging requests and close every connection."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ExchangeServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def set_series(self, symbol: str, closes: list[float]) -> None:
        """Serve these closes, oldest first, as the symbol's most recent closed bars."""
        if not closes or not all(isinstance(c, (int, float)) and math.isfinite(c) and c > 0 for c in closes):
            raise ValueError("closes must be a non-empty list of finite positive numbers")
        with self._lock:
            self._series[symbol] = tuple(float(c) for c in closes)

    def set_listed(self, symbols: list[str]) -> None:
        """List these symbols in exchangeInfo too (besides those with a series and LISTED_DEFAULT)."""
        with self._lock:
            self._listed |= set(symbols)

    def set_fault(
        self,
        mode: str,
        times: int | None = None,
        symbols: list[str] | None = None,
        retry_after: int = 1,
        hang_s: float = MAX_HANG_S,
    ) -> None:
        """Misbehave in `mode` (one of FAULTS) for the next `times` matching requests (None: until cleared)."""
        if mode not in FAULTS:
            raise ValueError(f"unknown fault mode {mode!r}; use one of {', '.join(FAULTS)}")
        fault = Fault(
            mode, times, list(symbols) if symbols is not None else None, int(retry_after), min(hang_s, MAX_HANG_S)
        )
        with self._lock:
            self._fault = fault

    def clear_fault(self) -> None:
        """Behave again."""
        with self._lock:
            self._fault = None

    def request_count(self, symbol: str) -> int:
        """How many klines requests asked for `symbol`."""
        with self._lock:
            return self._counts.get(symbol, 0)

    def counts(self) -> dict[str, int]:
        """Klines requests per symbol."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        """Forget the request counts."""
        with self._lock:
            self._counts.clear()

    def state(self) -> dict:
        """What GET /_control shows."""
        with self._lock:
            fault = asdict(self._fault) if self._fault else None
            return {
                "latency_ms": self.latency_s * 1000,
                "now_ms": self.now_ms,
                "fault": fault,
                "counts": dict(self._counts),
                "series": sorted(self._series),
                "paths": dict(self.paths),
            }

    def control(self, command: dict) -> None:
        """Apply a /_control command (see the module docstring)."""
        if "latency_ms" in command:
            self.latency_s = float(command["latency_ms"]) / 1000
        if "now_ms" in command:
            self.now_ms = None if command["now_ms"] is None else int(command["now_ms"])
        for symbol, closes in (command.get("series") or {}).items():
            self.set_series(symbol, closes)
        if command.get("listed"):
            self.set_listed(list(command["listed"]))
        if "fault" in command:
            if command["fault"] is None:
                self.clear_fault()
            else:
                self.set_fault(**command["fault"])
        if command.get("reset_counts"):
            self.reset_counts()

    # -- serving --

    def exchange_info(self) -> tuple[int, dict[str, str], bytes]:
        """GET /api/v3/exchangeInfo: the listed spot symbols, in the fields ccxt's binance reads.

        Answered at once: latency and faults are the klines' (what a scan waits for), as tests and the bench expect.
        """
        with self._lock:
            symbols = sorted(self._listed | set(self._series))
        info = {
            "timezone": "UTC",
            "serverTime": self.now_ms if self.now_ms is not None else int(time.time() * 1000),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": [],
            "symbols": [_symbol_info(symbol) for symbol in symbols],
        }
        return 200, {}, json.dumps(info).encode()

    def klines(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for GET /api/v3/klines."""
        symbol = query.get("symbol", "")
        with self._lock:
            self._counts[symbol] = self._counts.get(symbol, 0) + 1
        if self.latency_s > 0:
            self._stopping.wait(self.latency_s)
        if not symbol:
            return _error(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not _SYMBOL.match(symbol):
            return _error(400, -1121, "Invalid symbol.")
        bar_ms = INTERVALS_MS.get(query.get("interval", ""))
        if bar_ms is None:
            return _error(400, -1120, "Invalid interval.")
        try:
            limit = int(query.get("limit", "500"))
        except ValueError:
            return _error(400, -1100, "Illegal characters found in parameter 'limit'.")
        if not 1 <= limit <= 1000:
            return _error(400, -1130, "Invalid data sent for a parameter.")
        rows = self._rows(symbol, bar_ms, limit)
        fault = self._take_fault(symbol)
        if fault is not None:
            return self._faulty(fault, rows)
        return 200, {}, json.dumps(rows).encode()

    def _rows(self, symbol: str, bar_ms: int, limit: int) -> list[list]:
        """The symbol's last `limit` bars in Binance's kline format, the last one still open."""
        with self._lock:
            closes = self._series.get(symbol) or _default_closes(symbol)
        now_ms = self.now_ms if self.now_ms is not None else int(time.time() * 1000)
        open_bar_time = now_ms // bar_ms * bar_ms
        closes = list(closes) + [round(closes[-1] * 1.01, 8)]
        start = max(len(closes) - limit, 0)
        rows = []
        for i in range(start, len(closes)):
            open_time = open_bar_time - (len(closes) - 1 - i) * bar_ms
            close, open_ = closes[i], closes[max(i - 1, 0)]
            high, low = max(open_, close) * 1.001, min(open_, close) * 0.999
            volume = 10.0 + i % 7
            rows.append(
                [
                    open_time,
                    f"{open_:.8f}",
                    f"{high:.8f}",
                    f"{low:.8f}",
                    f"{close:.8f}",
                    f"{volume:.8f}",
                    open_time + bar_ms - 1,
                    f"{volume * close:.8f}",
                    100 + i % 13,
                    f"{volume / 2:.8f}",
                    f"{volume * close / 2:.8f}",
                    "0",
                ]
            )
        return rows

    def _take_fault(self, symbol: str) -> Fault | None:
        with self._lock:
            fault = self._fault
            if fault is None or (fault.symbols is not None and symbol not in fault.symbols):
                return None
            if fault.times is not None:
                if fault.times <= 0:
                    return None
                fault.times -= 1
            return Fault(**asdict(fault))

    def _faulty(self, fault: Fault, rows: list[list]) -> tuple[int, dict[str, str], bytes]:
        mode = fault.mode
        if mode == "http_500":
            return _error(500, -1000, "An unknown error occurred while processing the request.")
        if mode == "rate_limit_429":
            status, headers, body = _error(
                429, -1003, "Too many requests; current limit is 6000 request weight per 1 MINUTE."
            )
            return status, {"Retry-After": str(fault.retry_after)}, body
        if mode == "ban_418":
            status, headers, body = _error(418, -1003, "Way too many requests; IP banned.")
            return status, {"Retry-After": str(fault.retry_after)}, body
        if mode == "hang":
            self._stopping.wait(fault.hang_s)
            return 200, {}, json.dumps(rows).encode()
        if mode == "malformed_json":
            body = json.dumps(rows).encode()
            return 200, {}, body[: max(len(body) // 2, 2)]
        if mode == "empty":
            return 200, {}, b"[]"
        if mode == "not_a_list":
            return 200, {}, json.dumps({"data": rows}).encode()
        rows = [list(row) for row in rows]
        if mode == "string_times":
            rows[0][0] = str(rows[0][0])
        elif mode == "nan_price":
            rows[0][4] = "NaN"
        elif mode == "negative_price":
            rows[0][4] = "-1.5"
        elif mode == "short_rows":
            rows = [row[:5] for row in rows]
        return 200, {}, json.dumps(rows).encode()


def _symbol_info(symbol: str) -> dict:
    """One exchangeInfo entry; the quote asset is the longest known suffix (USDT when none matches)."""
    quote = next((q for q in QUOTES if symbol.endswith(q) and len(symbol) > len(q)), "USDT")
    base = symbol[: -len(quote)] if symbol.endswith(quote) else symbol
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000001",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.00000001",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "9000000.00000000", "stepSize": "0.00000001"},
        ],
    }


def _error(status: int, code: int, msg: str) -> tuple[int, dict[str, str], bytes]:
    return status, {}, json.dumps({"code": code, "msg": msg}).encode()


@functools.lru_cache(maxsize=1024)
def _default_closes(symbol: str) -> tuple[float, ...]:
    """A deterministic wavy series for symbols the test did not set."""
    phase = zlib.crc32(symbol.encode()) % 1000 / 100
    level = 10 + zlib.crc32(symbol.encode()) % 5000
    return tuple(
        round(level * (1 + 0.02 * math.sin(i / 7 + phase) + 0.01 * math.sin(i / 2.3)), 6) for i in range(DEFAULT_BARS)
    )


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that remembers its connections so stop() can close idle keep-alive ones."""

    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs when dozens of clients connect at once
    exchange: ExchangeServer

    def __init__(self, *args, **kwargs) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (timeout test) closes its socket; that is expected, not an error.
        if self.exchange.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would add ~40 ms each
    timeout = 30  # idle keep-alive connections end after this
    server: _HTTPServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        exchange = self.server.exchange
        with exchange._lock:
            exchange.paths[parts.path] = exchange.paths.get(parts.path, 0) + 1
        if parts.path == "/api/v3/klines":
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            self._send(*exchange.klines(query))
        elif parts.path == "/api/v3/exchangeInfo":
            self._send(*exchange.exchange_info())
        elif parts.path == "/api/v3/ping":
            self._send(200, {}, b"{}")
        elif parts.path == "/api/v3/time":
            self._send(200, {}, json.dumps({"serverTime": int(time.time() * 1000)}).encode())
        elif parts.path == "/_control":
            self._send(200, {}, json.dumps(exchange.state()).encode())
        else:
            self._send(*_error(404, -1, f"no route {parts.path}"))

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/_control":
            self._send(*_error(404, -1, f"no route {self.path}"))
            return
        try:
            command = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not isinstance(command, dict):
                raise ValueError("the body must be a JSON object")
            self.server.exchange.control(command)
        except (ValueError, TypeError) as exc:
            self._send(*_error(400, -1, f"bad control command: {exc}"))
            return
        self._send(200, {}, json.dumps(self.server.exchange.state()).encode())

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        if self.server.exchange.verbose:
            super().log_message(format, *args)


class ExchangeProcess(ServerProcess):
    """`python -m MODULE --port N` (this module, or a subclass's such as tests.chaos.exchange) as its own process."""

    def __init__(self, log_dir: Path, module: str = "harness.exchange", latency_ms: float = 0.0):
        """Pick the port; start() runs it."""
        self.port = free_port()
        args = [sys.executable, "-m", module, "--port", str(self.port)]
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        super().__init__(args, {**os.environ, "PYTHONUNBUFFERED": "1"}, "exchange", log_dir)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """True when the API answers a ping."""
        try:
            return requests.get(self.url + "/api/v3/ping", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start(self, timeout: float = 20.0) -> ExchangeProcess:
        """Start and wait until it answers."""
        super().start()
        self.wait_for(self.ready, timeout, "exchange answering")
        return self

    def control(self, **command) -> dict:
        """Apply a /_control command; return the state."""
        answer = requests.post(self.url + "/_control", json=command, timeout=5)
        answer.raise_for_status()
        return answer.json()


def main(argv: list[str] | None = None) -> None:
    """Run the server until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m harness.exchange", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every API answer")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with ExchangeServer(args.host, args.port, args.latency_ms / 1000, verbose=args.verbose) as exchange:
        print(f"listening on {exchange.url}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
