"""Replay of an OHLCV CSV file, for backtests and offline demos."""

from __future__ import annotations

import csv
import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tasks.market.base import MarketDataError, MarketSource, check_limit
from tasks.market.candles import Candles

TIME_COLUMNS = ("time", "date", "timestamp", "datetime")
PRICE_COLUMNS = ("open", "high", "low", "close")
ANY_SYMBOL = ""  # key of the series when the file has no symbol column: it serves every symbol
MAX_LIMIT = 1_000_000


class CsvSource(MarketSource):
    """Bars from a CSV file with a header row, loaded and checked once, when the source is made.

    Columns (names case-insensitive): the time column is named time/date/timestamp/datetime or is
    the unnamed first column; close is required; open/high/low default to close and volume to 0.
    An optional `symbol` column splits the file into one series per symbol; without it the file
    serves whatever symbol is asked for. Times are epoch seconds, ms (>= 1e11), µs or ns, or
    ISO-8601 (naive means UTC), ascending or descending. A bar lasts the smallest gap between times.

    fetch() serves closed bars only (close_time < now_ms). With replay=True it ignores the clock
    and walks through the file instead: the first fetch of a symbol reveals its first `limit` bars,
    every later fetch reveals one more bar, and each fetch returns the last `limit` revealed bars.
    At the end of the file the last window is returned again (no new bar, so no new signal).
    """

    name = "csv"

    def __init__(self, path: str | Path, replay: bool = False) -> None:
        self.path = Path(path)
        self.replay = replay
        self._series = _load(self.path)
        self._revealed: dict[str, int] = {}
        self._lock = threading.Lock()

    def all(self, symbol: str = ANY_SYMBOL) -> Candles:
        """Every bar of the symbol's series, oldest first (the whole file when it has no symbol column)."""
        if ANY_SYMBOL in self._series:
            return self._series[ANY_SYMBOL]
        series = self._series.get(symbol.upper())
        if series is None:
            raise MarketDataError(
                f"{self.path} has no rows for symbol {symbol!r}; "
                f"its symbol column lists {', '.join(sorted(self._series))}"
            )
        return series

    def fetch(self, symbol: str, timeframe: str, limit: int, now_ms: int | None = None) -> Candles:
        """The last `limit` closed bars at `now_ms`, or, when replaying, the next step of the replay.

        The file's own spacing sets the bar length; `timeframe` only labels the request.
        """
        check_limit(limit, MAX_LIMIT)
        candles = self.all(symbol)
        if self.replay:
            with self._lock:
                revealed = self._revealed.get(symbol, 0)
                revealed = min(len(candles), limit if revealed == 0 else revealed + 1)
                self._revealed[symbol] = revealed
            return candles[:revealed].tail(limit)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        closed = int(np.searchsorted(candles.close_time, now_ms, side="left"))
        return candles[:closed].tail(limit)


def _load(path: Path) -> dict[str, Candles]:
    """Parse and check the whole file; raise MarketDataError naming the file, line and fix."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise MarketDataError(f"{path} is empty; it needs a header row such as time,open,high,low,close,volume")
            columns = _columns(path, header)
            rows: dict[str, list[tuple[int, int, float, float, float, float, float]]] = {}
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                line = reader.line_num
                if len(cells) != len(header):
                    raise MarketDataError(
                        f"{path}, line {line}: {len(cells)} cells but the header has {len(header)}; "
                        "fix or remove the row"
                    )
                symbol = cells[columns["symbol"]].strip().upper() if "symbol" in columns else ANY_SYMBOL
                if "symbol" in columns and not symbol:
                    raise MarketDataError(f"{path}, line {line}: the symbol cell is empty; fill it or remove the row")
                rows.setdefault(symbol, []).append((line, *_row(path, line, cells, columns)))
    except OSError as exc:
        raise MarketDataError(f"cannot read CSV {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise MarketDataError(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise MarketDataError(f"{path}: not valid CSV: {exc}") from None
    if not rows:
        raise MarketDataError(f"{path} has a header but no data rows")
    return {symbol: _candles(path, series) for symbol, series in rows.items()}


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    columns = {name: i for i, name in reversed(list(enumerate(names))) if name}
    found = [name for name in TIME_COLUMNS if name in columns]
    if found:
        columns["time"] = columns[found[0]]
    elif names and names[0] == "":
        columns["time"] = 0
    else:
        raise MarketDataError(
            f"{path}, line 1: no time column in header {header}; name it time, date, timestamp or datetime "
            "(or leave the first column's name empty)"
        )
    if "close" not in columns:
        raise MarketDataError(f"{path}, line 1: no close column in header {header}; add a column named close")
    return columns


def _row(
    path: Path, line: int, cells: list[str], columns: dict[str, int]
) -> tuple[int, float, float, float, float, float]:
    open_time = _time(path, line, cells[columns["time"]].strip())
    close = _number(path, line, "close", cells[columns["close"]])
    o, h, l = (
        _number(path, line, name, cells[columns[name]]) if name in columns else close for name in PRICE_COLUMNS[:3]
    )
    volume = _number(path, line, "volume", cells[columns["volume"]]) if "volume" in columns else 0.0
    if min(o, h, l, close) <= 0 or volume < 0:
        raise MarketDataError(f"{path}, line {line}: prices must be > 0 and volume >= 0, got {cells}")
    if h < max(o, l, close) or l > min(o, close):
        raise MarketDataError(
            f"{path}, line {line}: high/low do not enclose open and close: {cells}; check the column order"
        )
    return open_time, o, h, l, close, volume


def _number(path: Path, line: int, name: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise MarketDataError(
            f"{path}, line {line}: {name} value {cell!r} is not a number; fix the cell or remove the row"
        ) from None
    if not math.isfinite(value):
        raise MarketDataError(
            f"{path}, line {line}: {name} value {cell!r} is not finite; fix the cell or remove the row"
        )
    return value


def _time(path: Path, line: int, cell: str) -> int:
    """Epoch ms from epoch s/ms/µs/ns or an ISO-8601 date/time."""
    try:
        number = float(cell)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number) and number >= 0:
        # Pick the unit by magnitude: 1e11 s is the year 5138, 1e11 ms is 1973.
        for limit, to_ms in ((1e11, 1e3), (1e14, 1.0), (1e17, 1e-3)):
            if number < limit:
                return int(round(number * to_ms))
        return int(round(number * 1e-6))
    try:
        moment = datetime.fromisoformat(cell)
    except ValueError:
        raise MarketDataError(
            f"{path}, line {line}: time {cell!r} is neither epoch seconds/ms "
            "nor an ISO-8601 date such as 2024-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round(moment.timestamp() * 1000))


def _candles(path: Path, rows: list[tuple[int, int, float, float, float, float, float]]) -> Candles:
    if len(rows) > 1 and rows[0][1] > rows[-1][1]:
        rows = rows[::-1]  # newest-first exports
    for before, after in zip(rows, rows[1:]):
        if after[1] <= before[1]:
            raise MarketDataError(
                f"{path}, line {after[0]}: time {after[1]} ms is not after line {before[0]}'s; "
                "sort the file by time and drop duplicates"
            )
    table = np.array([row[1:] for row in rows], dtype=np.float64)
    open_time = np.array([row[1] for row in rows], dtype=np.int64)
    bar_ms = int(np.diff(open_time).min()) if len(rows) > 1 else 60_000
    return Candles(open_time, table[:, 1], table[:, 2], table[:, 3], table[:, 4], table[:, 5], open_time + bar_ms - 1)
