"""CsvSource: the accepted CSV dialects, clear errors for bad files, and the replay rule."""

import numpy as np
import pytest

from tasks.market import CsvSource, MarketDataError

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def write(tmp_path, text, name="bars.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def bars_csv(header, times, closes=(10, 11, 12, 13, 14)):
    lines = [header] + [f"{t},{c},{c + 1},{c - 1},{c},{100 + i}" for i, (t, c) in enumerate(zip(times, closes))]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "header, times",
    [
        ("time,open,high,low,close,volume", [T0 + i * 60_000 for i in range(5)]),
        ("Timestamp,Open,High,Low,Close,Volume", [T0 // 1000 + i * 60 for i in range(5)]),
        ("DATE,OPEN,HIGH,LOW,CLOSE,VOLUME", [f"2023-11-14T22:{13 + i:02d}:20Z" for i in range(5)]),
        ("datetime,open,high,low,close,volume", [f"2023-11-14 22:{13 + i:02d}:20" for i in range(5)]),
        (",Open,High,Low,Close,Volume", [f"2023-11-14T22:{13 + i:02d}:20+00:00" for i in range(5)]),
    ],
    ids=["time-ms", "timestamp-seconds", "DATE-iso-z", "datetime-naive", "unnamed-first-column"],
)
def test_reads_every_supported_dialect(tmp_path, header, times):
    source = CsvSource(write(tmp_path, bars_csv(header, times)))

    candles = source.all()

    assert candles.open_time.tolist() == [T0 + i * 60_000 for i in range(5)]
    assert candles.close_time.tolist() == [T0 + i * 60_000 + 59_999 for i in range(5)]
    assert candles.close.tolist() == [10, 11, 12, 13, 14]
    assert candles.high.tolist() == [11, 12, 13, 14, 15] and candles.low.tolist() == [9, 10, 11, 12, 13]
    assert candles.volume.tolist() == [100, 101, 102, 103, 104]


def test_date_only_rows_make_daily_bars(tmp_path):
    path = write(tmp_path, "Date,Close\n2024-01-01,5\n2024-01-02,6\n2024-01-03,7\n")

    candles = CsvSource(path).all()

    assert candles.open_time[0] == 1_704_067_200_000
    assert np.all(candles.close_time - candles.open_time == 86_400_000 - 1)


def test_volume_is_optional_and_open_high_low_default_to_close(tmp_path):
    path = write(tmp_path, "time,close\n1700000000,5\n1700000060,6\n")

    candles = CsvSource(path).all()

    assert candles.volume.tolist() == [0.0, 0.0]
    assert candles.open.tolist() == candles.high.tolist() == candles.low.tolist() == [5.0, 6.0]


def test_newest_first_files_are_reversed(tmp_path):
    path = write(tmp_path, "time,close\n1700000120,7\n1700000060,6\n1700000000,5\n")

    assert CsvSource(path).all().close.tolist() == [5.0, 6.0, 7.0]


def test_a_symbol_column_splits_the_file(tmp_path):
    path = write(
        tmp_path, "time,symbol,close\n1700000000,BTCUSDT,60000\n1700000000,ETHUSDT,3000\n1700000060,BTCUSDT,60100\n"
    )
    source = CsvSource(path)

    assert source.all("BTCUSDT").close.tolist() == [60000.0, 60100.0]
    assert source.all("ethusdt").close.tolist() == [3000.0]
    with pytest.raises(MarketDataError, match="no rows for symbol 'SOLUSDT'.*BTCUSDT, ETHUSDT"):
        source.fetch("SOLUSDT", "1m", 10)


def test_fetch_serves_only_bars_closed_at_now(tmp_path):
    source = CsvSource(
        write(tmp_path, bars_csv("time,open,high,low,close,volume", [T0 + i * 60_000 for i in range(5)]))
    )

    assert source.fetch("ANY", "1m", 10, now_ms=T0 + 3 * 60_000).close.tolist() == [10, 11, 12]
    assert source.fetch("ANY", "1m", 10, now_ms=T0 + 3 * 60_000 - 1).close.tolist() == [10, 11]
    assert source.fetch("ANY", "1m", 2).close.tolist() == [13, 14]


def test_replay_reveals_limit_bars_then_one_per_fetch_per_symbol(tmp_path):
    path = write(tmp_path, bars_csv("time,open,high,low,close,volume", [T0 + i * 60_000 for i in range(5)]))
    source = CsvSource(path, replay=True)

    steps = [source.fetch("BTCUSDT", "1m", 3).close.tolist() for _ in range(4)]
    other = source.fetch("ETHUSDT", "1m", 3).close.tolist()
    again = CsvSource(path, replay=True).fetch("BTCUSDT", "1m", 3).close.tolist()

    assert steps == [[10, 11, 12], [11, 12, 13], [12, 13, 14], [12, 13, 14]]
    assert other == [10, 11, 12]
    assert again == [10, 11, 12]


def test_missing_close_column_names_the_file_and_fix(tmp_path):
    path = write(tmp_path, "time,open,high,low,price\n1700000000,1,1,1,1\n")

    with pytest.raises(MarketDataError, match="line 1: no close column") as error:
        CsvSource(path)

    assert str(path) in str(error.value) and "add a column named close" in str(error.value)


def test_missing_time_column_says_how_to_name_it(tmp_path):
    path = write(tmp_path, "when,close\n1700000000,1\n")

    with pytest.raises(MarketDataError, match="no time column.*time, date, timestamp or datetime"):
        CsvSource(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("time,close\n1700000000,1\n1700000060,abc\n", "line 3: close value 'abc' is not a number"),
        ("time,close\n1700000000,1\n\n1700000060,\n", "line 4: close value '' is not a number"),
        ("time,close,volume\n1700000000,1,nan\n", "line 2: volume value 'nan' is not finite"),
        ("time,close\nyesterday,1\n", "line 2: time 'yesterday' is neither"),
        ("time,close\n1700000000,1,2\n", "line 2: 3 cells but the header has 2"),
        ("time,close\n1700000000,-1\n", "line 2: prices must be > 0"),
        ("time,open,high,low,close\n1700000000,5,4,3,5\n", "line 2: high/low do not enclose"),
        ("time,close\n1700000000,1\n1700000120,2\n1700000060,3\n", "line 4: time .* is not after line 3"),
        ("time,close\n1700000000,1\n1700000000,2\n", "line 3: time .* is not after line 2"),
        ("time,symbol,close\n1700000000,,2\n", "line 2: the symbol cell is empty"),
        ("", "is empty"),
        ("time,close\n", "no data rows"),
    ],
)
def test_bad_rows_name_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text)

    with pytest.raises(MarketDataError, match=message) as error:
        CsvSource(path)

    assert str(error.value).startswith(str(path))


def test_a_missing_file_is_a_market_data_error(tmp_path):
    with pytest.raises(MarketDataError, match="cannot read CSV .*nope.csv"):
        CsvSource(tmp_path / "nope.csv")


def test_the_source_is_named_csv(tmp_path):
    assert CsvSource(write(tmp_path, "time,close\n1700000000,1\n")).name == "csv"
