"""The backtest CLI: every spec form over a CSV file, at the file's timeframe or resampled to a longer one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import talib

from tasks.backtest import main, resample, run_backtest
from tasks.market.candles import Candles
from tests.tasks.strategies.conftest import ohlcv, random_walk
from tests.tasks.strategies.test_crosses import line_crosses

ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_764_028_800_000  # 2025-11-25 00:00 UTC, a whole hour


def write_csv(path: Path, candles: Candles) -> Path:
    """CANDLES as an OHLCV CSV file with a header row and ISO times."""
    rows = ["time,open,high,low,close,volume"]
    for t, o, h, lo, c, v in zip(
        candles.open_time, candles.open, candles.high, candles.low, candles.close, candles.volume
    ):
        iso = np.datetime64(int(t), "ms").astype(str) + "Z"
        rows.append(f"{iso},{float(o)!r},{float(h)!r},{float(lo)!r},{float(c)!r},{float(v)!r}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def minute_csv(tmp_path):
    """2,000 one-minute bars starting on a whole hour."""
    bars = ohlcv(random_walk(2000, seed=11))
    shifted = Candles(
        bars.open_time - bars.open_time[0] + START_MS,
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        bars.close_time - bars.open_time[0] + START_MS,
    )
    return write_csv(tmp_path / "btc.csv", shifted), shifted


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m tasks.backtest ARGS` from the checkout, with the documented example folder on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "docs" / "examples")}
    return subprocess.run(
        [sys.executable, "-m", "tasks.backtest", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_runs_every_spec_form_in_bar_order(minute_csv):
    path, candles = minute_csv

    done = run_cli(
        "--csv",
        str(path),
        "--strategy",
        "cross:fast=ema(9),slow=SMA(50)",
        "--strategy",
        "level:of=MFI(14),lower=20,upper=80",
        "--strategy",
        "py:breakout.Breakout:lookback=20",
        "--strategy",
        "rsi",
    )

    assert done.returncode == 0, done.stderr
    signals = [json.loads(line) for line in done.stdout.splitlines()]
    by_strategy = {s["strategy"] for s in signals}
    assert by_strategy == {
        "cross:fast=EMA(9),slow=SMA(50)",
        "level:of=MFI(14),lower=20,upper=80",
        "py:breakout.Breakout:lookback=20",
        "rsi:period=14,lower=30,upper=70",
    }
    assert [s["bar_time"] for s in signals] == sorted(s["bar_time"] for s in signals)
    index = {int(t): i for i, t in enumerate(candles.open_time)}
    crosses = [
        (index[np.datetime64(s["bar_time"][:-1], "ms").astype(np.int64).item()], s["type"])
        for s in signals
        if s["strategy"].startswith("cross:")
    ]
    assert crosses == line_crosses(talib.EMA(candles.close, 9), talib.SMA(candles.close, 50))
    assert all(s["timeframe"] == "1m" and s["source"] == "csv" for s in signals)


def test_timeframe_resamples_to_complete_bars(minute_csv):
    path, candles = minute_csv

    result = run_backtest(str(path), ["sma_cross:fast=3,slow=8"], "BTCUSDT", "15m")

    bars = result.candles
    assert result.timeframe == "15m" and len(bars) == 2000 // 15  # the last 5 minutes make no whole bar
    assert np.all(np.diff(bars.open_time) == 900_000) and bars.open_time[0] == START_MS
    assert bars.open[1] == candles.open[15] and bars.close[1] == candles.close[29]
    assert bars.high[1] == candles.high[15:30].max() and bars.low[1] == candles.low[15:30].min()
    assert bars.volume[1] == pytest.approx(candles.volume[15:30].sum())
    assert [s["price"] for s in result.signals] == [
        float(bars.close[i]) for i, _ in line_crosses(talib.SMA(bars.close, 3), talib.SMA(bars.close, 8))
    ]
    assert all(s["timeframe"] == "15m" for s in result.signals)


def test_a_bar_with_a_missing_minute_is_dropped():
    minutes = np.r_[0:30, 31:60] * 60_000  # minute 30 missing: the second 30m bar is incomplete
    ones = np.ones(len(minutes))
    bars = Candles(minutes, ones, ones, ones, ones, ones, minutes + 59_999)

    assert resample(bars, 60_000, "30m").open_time.tolist() == [0]


def test_weekly_bars_open_on_monday():
    days = START_MS + np.arange(21) * 86_400_000  # from Tuesday 2025-11-25
    ones = np.ones(len(days))

    weeks = resample(Candles(days, ones, ones, ones, ones, ones, days + 86_399_999), 86_400_000, "1w")

    monday = np.datetime64("2025-12-01T00:00", "ms").astype(np.int64).item()
    assert weeks.open_time.tolist() == [monday, monday + 604_800_000]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeframe", "90s"], "--timeframe 90s is not a whole multiple of the file's 1m bars"),
        (["--timeframe", "15x"], "timeframe '15x' is not understood"),
        (["--strategy", "cross:fast=EMAX(9),slow=close"], "EMAX is not a TA-Lib function"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(minute_csv, capsys, args, message):
    path, _ = minute_csv
    strategy = [] if "--strategy" in args else ["--strategy", "sma_cross"]

    code = main(["--csv", str(path), *strategy, *args])

    assert code == 2
    assert message in capsys.readouterr().err
