"""The documented example strategy through a real Celery worker scanning the loopback exchange."""

from pathlib import Path

from backend import history
from harness.exchange import CROSS_UP, ExchangeServer
from harness.polling import wait_until
from tests.tasks.test_celery_pipeline import send_scan

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def test_a_worker_runs_the_documented_py_strategy(redis_url, redis_client, start_celery):
    with ExchangeServer() as exchange:
        exchange.set_series("BTCUSDT", CROSS_UP)
        start_celery(
            "worker",
            MARKET_SOURCE="binance",
            BINANCE_API_URL=exchange.url,
            SYMBOLS="BTCUSDT",
            TIMEFRAME="1m",
            STRATEGIES="py:breakout.Breakout:lookback=20",
            PYTHONPATH=str(EXAMPLES),
        )

        send_scan(redis_url, ["BTCUSDT"])
        wait_until(lambda: history.read_range(redis_client, 0), 30, message="the breakout signal in history")

    [signal] = history.read_range(redis_client, 0)
    assert signal["strategy"] == "py:breakout.Breakout:lookback=20"
    assert (signal["type"], signal["price"], signal["symbol"]) == ("BUY", 200.0, "BTCUSDT")
    assert signal["reason"] == "close broke above the high of the last 20 bars"
    assert set(signal["indicators"]) == {"upper", "lower"}
