"""The test exchange itself, run as a separate process and driven through /_control."""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tasks.market.exchange import CcxtSource

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def exchange_process():
    """`python -m harness.exchange` on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.exchange", "--port", "0", "--latency-ms", "5"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # ends at the banner, or at EOF if the server died
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_runs_as_a_process_and_obeys_control(exchange_process):
    control = f"{exchange_process}/_control"
    answer = requests.post(
        control,
        json={
            "series": {"BTCUSDT": [1.0, 2.0, 3.0]},
            "fault": {"mode": "http_500", "times": 1},
            "now_ms": 1_764_000_030_000,
        },
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["latency_ms"] == 5

    candles = CcxtSource("binance", exchange_process).fetch("BTCUSDT", "1m", 10, now_ms=1_764_000_030_000)

    assert candles.close.tolist() == [1.0, 2.0, 3.0]
    assert requests.get(control, timeout=5).json()["counts"] == {"BTCUSDT": 2}


def test_a_bad_control_command_is_refused(exchange_process):
    answer = requests.post(f"{exchange_process}/_control", json={"fault": {"mode": "explode"}}, timeout=5)

    assert answer.status_code == 400 and "unknown fault mode" in answer.json()["msg"]


def test_klines_follow_binance_format(exchange):
    rows = requests.get(
        f"{exchange.url}/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "limit": 3}, timeout=5
    ).json()

    assert len(rows) == 3 and all(len(row) == 12 for row in rows)
    assert all(isinstance(row[0], int) and isinstance(row[6], int) and isinstance(row[4], str) for row in rows)
    assert rows[-1][6] > exchange.now_ms >= rows[-2][6]  # the last bar is still open
