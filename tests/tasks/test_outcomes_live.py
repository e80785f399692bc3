"""Outcomes through the real processes: a Celery worker replaying a CSV, the web process, Socket.IO clients, and
`python -m tasks.backtest --stats` on the same file."""

import json
import subprocess
import sys

import pytest
import requests
from celery import Celery

from backend.embedded_redis import EmbeddedRedis
from backend.redis_client import make_redis
from harness.bars import replay, wave_closes, write_bars_csv
from harness.polling import wait_until
from harness.processes import ROOT, WebServer
from harness.redis import make_publisher, wipe_redis_data

SPECS = ["sma_cross:fast=3,slow=5", "sma_cross:fast=5,slow=12"]


def backtest_stats(path) -> list[dict]:
    """What `python -m tasks.backtest --stats` prints for SPECS over PATH."""
    args = [sys.executable, "-m", "tasks.backtest", "--csv", str(path), "--stats", "--horizons", "1,5,20"]
    for spec in SPECS:
        args += ["--strategy", spec]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_backtest_stats_equal_the_live_stats_after_replaying_the_csv(
    start_web, start_celery, connect, redis_url, tmp_path
):
    # Flat first (no cross before the replay's first window), then waves: every signal is seen live.
    path = write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 120))
    env = {"MARKET_SOURCE": f"csv:{path}", "SYMBOLS": "BTCUSDT", "STRATEGIES": ";".join(SPECS), "TIMEFRAME": "1m"}
    web = start_web(**env)
    btc = connect(web.url, auth={"symbols": ["BTCUSDT"]})
    eth = connect(web.url, auth={"symbols": ["ETHUSDT"]})
    start_celery("worker", **env)
    expected = backtest_stats(path)
    total = sum(entry["signals"] for entry in expected)
    app = Celery(broker=redis_url)

    def counts(stats: list[dict]) -> list:
        return sorted((e["strategy"], e["signals"], [o["n"] for o in e["outcomes"].values()]) for e in stats)

    def replayed() -> bool:
        """One more scan (one more bar of the file, or none at its end); True once every outcome is counted."""
        app.send_task("tasks.scan.scan_symbols", args=[["BTCUSDT"]])
        return counts(requests.get(web.url + "/api/stats", timeout=5).json()["stats"]) == counts(expected)

    try:
        wait_until(replayed, 120, 0.05, message="the whole file replayed and scored")
    finally:
        app.close()

    live = requests.get(web.url + "/api/stats", timeout=5).json()
    by_strategy = {entry["strategy"]: entry for entry in live["stats"]}
    assert total >= 8 and live["horizons"] == [1, 5, 20]
    for entry in expected:
        got = by_strategy[entry["strategy"]]
        assert got["signals"] == entry["signals"]
        for h, outcome in entry["outcomes"].items():
            assert got["outcomes"][h]["n"] == outcome["n"] and got["outcomes"][h]["hit_rate"] == outcome["hit_rate"]
            # Redis adds with long doubles (HINCRBYFLOAT), the backtest with doubles: equal to 12 digits.
            assert got["outcomes"][h]["mean_return"] == pytest.approx(outcome["mean_return"], rel=1e-12)
    # Every outcome reached the client of BTCUSDT, none the client of ETHUSDT (live: its marker arrives).
    outcomes = requests.get(web.url + "/api/outcomes?limit=1000", timeout=5).json()["outcomes"]
    wait_until(lambda: len(btc.of("signal_outcome")) >= len(outcomes), message="every outcome on Socket.IO")
    key = lambda o: (o["seq"], o["h"])  # noqa: E731
    assert sorted(btc.of("signal_outcome"), key=key) == sorted(outcomes, key=key)
    make_publisher(make_redis(redis_url)).publish_signal({"type": "BUY", "price": 1.0, "symbol": "ETHUSDT", "id": "m"})
    wait_until(lambda: eth.signals(), message="the ETHUSDT marker")
    assert eth.of("signal_outcome") == []


def test_stats_survive_a_redis_restart_with_data_and_restart_with_the_epoch_without(base_env, tmp_path):
    own = EmbeddedRedis(persist=True).start()
    web = None
    try:
        client = make_redis(own.url)
        replay(write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 60)), make_publisher(client), client, SPECS[0])
        web = WebServer({**base_env, "REDIS_URL": own.url}, tmp_path, name="web-own").start()
        before = requests.get(web.url + "/api/stats", timeout=5).json()
        assert before["stats"] and before["stats"][0]["signals"] >= 2

        own.stop()
        own.start()
        after = wait_until(lambda: _stats(web), 30, message="/api/stats after the restart")

        own.stop()
        wipe_redis_data(own)
        own.start()
        lost = wait_until(lambda: _stats(web), 30, message="/api/stats after a restart without data")

        assert after == before
        assert lost["epoch"] != before["epoch"] and lost["stats"] == []
    finally:
        if web is not None:
            web.stop()
        own.cleanup()


def _stats(web: WebServer) -> dict | None:
    """/api/stats, or None while the web process cannot reach Redis."""
    response = requests.get(web.url + "/api/stats", timeout=5)
    return response.json() if response.status_code == 200 else None
