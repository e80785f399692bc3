"""The scan keeps charts and scores outcomes: a CSV replayed bar by bar through the real scanner and a real Redis."""

import json

import pytest

from backend import charts, history
from backend.outcomes import read_stats, stats_limits
from backend.signal_schema import OUTCOME_CHANNEL_SUFFIX, chart_key, outcome_key, utc_iso
from harness.bars import open_ms, replay, scan, start_now, wave_closes, write_bars_csv
from tasks.strategies import parse_strategies

HORIZONS = (1, 5, 20)
SPECS = "sma_cross:fast=3,slow=5;sma_cross:fast=5,slow=12"
LATER = 2**42  # a scan's clock in 2109: the bars of a file that starts now are all closed (the replay walks them)


def test_every_closed_bar_is_kept_once_oldest_first(tmp_path, publisher, redis_client):
    closes = wave_closes(30, 70)
    replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, SPECS)

    chart = charts.read_chart(redis_client, "BTCUSDT", "1m", 1000)

    assert [c["time"] for c in chart["candles"]] == [open_ms(i) for i in range(len(closes))]
    assert [c["close"] for c in chart["candles"]] == closes
    assert chart["candles"][5]["volume"] == 5.0 and chart["candles"][5]["high"] == max(closes[4], closes[5]) + 1


def test_the_store_holds_at_most_max_bars_per_pair(tmp_path, publisher, redis_client):
    closes = wave_closes(30, 70)
    replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, SPECS, max_bars=40)

    chart = charts.read_chart(redis_client, "BTCUSDT", "1m", 1000)

    assert redis_client.llen(chart_key("1m", "BTCUSDT")) == 40
    assert [c["close"] for c in chart["candles"]] == closes[-40:]


def test_a_store_that_lost_its_data_is_refilled_with_the_whole_window(tmp_path, publisher, redis_client):
    path = write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 70))
    scanner = replay(path, publisher, redis_client, SPECS, scans=10)
    redis_client.delete(chart_key("1m", "BTCUSDT"), "qs:chart-meta:1m:BTCUSDT")

    scan(scanner)

    times = [c["time"] for c in charts.read_chart(redis_client, "BTCUSDT", "1m", 1000)["candles"]]
    assert times == [open_ms(i) for i in range(10, 10 + scanner.lookback)]


def test_outcomes_equal_an_independent_computation_over_the_file(tmp_path, publisher, redis_client):
    closes = wave_closes(30, 170)
    replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, SPECS)
    signals = history.read_range(redis_client, 0)
    assert len(signals) >= 10

    for signal in signals:
        i = (int(signal["id"].split(":")[-2]) - open_ms(0)) // 60_000
        stored = redis_client.hgetall(outcome_key(signal["epoch"], signal["seq"]))
        sign = 1 if signal["type"] == "BUY" else -1
        expected = {str(h): sign * (closes[i + h] / closes[i] - 1) for h in HORIZONS if i + h < len(closes)}
        assert {h: float(stored[h]) for h in expected} == expected
        assert stored["id"] == signal["id"] and stored["sym"] == "BTCUSDT"
        assert set(stored) - {"id", "sym", "strategy"} == set(expected)


def test_stats_per_strategy_count_every_signal_and_outcome(tmp_path, publisher, redis_client):
    closes = wave_closes(30, 170)
    replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, SPECS)
    signals = history.read_range(redis_client, 0)
    epoch = signals[0]["epoch"]

    stats = {entry["strategy"]: entry for entry in read_stats(redis_client, epoch, HORIZONS)}

    for spec in parse_strategies(SPECS):
        fired = [s for s in signals if s["strategy"] == spec.spec]
        rs = []
        for s in fired:
            i = (int(s["id"].split(":")[-2]) - open_ms(0)) // 60_000
            if i + 5 < len(closes):
                rs.append((1 if s["type"] == "BUY" else -1) * (closes[i + 5] / closes[i] - 1))
        entry = stats[spec.spec]
        assert entry["signals"] == len(fired)
        assert entry["outcomes"]["5"]["n"] == len(rs)
        assert entry["outcomes"]["5"]["hit_rate"] == sum(r > 0 for r in rs) / len(rs)
        assert entry["outcomes"]["5"]["mean_return"] == pytest.approx(sum(rs) / len(rs), rel=1e-12)
    per_symbol = read_stats(redis_client, epoch, HORIZONS, symbol="BTCUSDT")
    assert [{**e, "symbol": None} for e in per_symbol] == [{**stats[e["strategy"]], "symbol": None} for e in per_symbol]
    assert read_stats(redis_client, epoch, HORIZONS, symbol="ETHUSDT") == []


def test_each_outcome_is_announced_once_on_the_outcome_channel(tmp_path, publisher, redis_client):
    pubsub = redis_client.pubsub()
    pubsub.subscribe("quantum_signals" + OUTCOME_CHANNEL_SUFFIX)
    replay(write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 70)), publisher, redis_client, SPECS)

    announced = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            announced.append(json.loads(message["data"]))
    pubsub.close()

    stored = []
    for signal in history.read_range(redis_client, 0):
        fields = redis_client.hgetall(outcome_key(signal["epoch"], signal["seq"]))
        stored += [{"epoch": signal["epoch"], "seq": signal["seq"], "h": int(h)} for h in fields if h.isdigit()]
    assert sorted(announced, key=str) == sorted(stored, key=str) and stored


def test_signals_of_any_origin_are_scored_and_counted_under_their_source(tmp_path, publisher, redis_client):
    closes, start = wave_closes(30, 70), start_now(20)
    path = write_bars_csv(tmp_path / "bars.csv", closes, start)
    scanner = replay(path, publisher, redis_client, SPECS, scans=5)
    bar = utc_iso(open_ms(20, start))
    covered = publisher.publish_signal(
        {"type": "SELL", "price": 1.0, "symbol": "BTCUSDT", "timeframe": "1m", "strategy": "tv", "bar_time": bar}
        | {"source": "webhook"}
    )
    publisher.publish_signal(
        {"type": "BUY", "price": 1.0, "symbol": "DOGEUSDT", "timeframe": "1m", "strategy": "tv2", "bar_time": bar}
    )

    for _ in range(3):
        scan(scanner, now_ms=LATER)

    stats = read_stats(redis_client, covered["epoch"], HORIZONS)
    assert [(e["strategy"], e.get("source"), e["signals"]) for e in stats] == [("tv", "webhook", 1)]
    stored = redis_client.hgetall(outcome_key(covered["epoch"], covered["seq"]))
    assert float(stored["5"]) == -(closes[25] / closes[20] - 1)


def test_an_outside_signal_named_as_a_scan_strategy_is_counted_under_its_source(tmp_path, publisher, redis_client):
    start = start_now(20)
    path = write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 70), start)
    scanner = replay(path, publisher, redis_client, SPECS, scans=5)
    spec = parse_strategies(SPECS)[0].spec
    for source in ("webhook", "csv"):  # "csv": the scan's own source, named in the body
        publisher.publish_signal(
            {"type": "BUY", "price": 1.0, "symbol": "BTCUSDT", "timeframe": "1m", "strategy": spec}
            | {"bar_time": utc_iso(open_ms(20, start)), "source": source, "id": f"ext:{source}"}
        )

    for _ in range(30):
        scan(scanner, now_ms=LATER)

    stats = read_stats(redis_client, history.cursor(redis_client)[0], HORIZONS, strategy=spec)
    scans = [s for s in history.read_range(redis_client, 0) if s["strategy"] == spec and s["source"] == "csv"]
    assert [(e.get("source"), e["signals"]) for e in stats] == [(None, len(scans) - 1), ("csv", 1), ("webhook", 1)]
    assert [e["outcomes"]["5"]["n"] for e in stats[1:]] == [1, 1]


def test_a_signal_on_a_bar_whose_outcome_was_known_is_marked_unscored(tmp_path, publisher, redis_client):
    closes = wave_closes(30, 170)
    path = write_bars_csv(tmp_path / "bars.csv", closes)
    honest = replay(path, publisher, redis_client, SPECS)
    epoch = history.cursor(redis_client)[0]
    before = read_stats(redis_client, epoch, HORIZONS)
    spec = parse_strategies(SPECS)[0].spec
    late = []
    for i in range(100, 190):  # the bars after which the close rose: a hit, at every horizon, in hindsight
        kind = "BUY" if closes[i + 5] > closes[i] else "SELL"
        body = {"type": kind, "price": closes[i], "symbol": "BTCUSDT", "timeframe": "1m", "strategy": spec}
        for source in ("webhook", "csv"):
            late.append(publisher.publish_signal(body | {"bar_time": utc_iso(open_ms(i)), "source": source}))

    honest.keeper.route()  # as a worker's keeper does every second
    scan(honest)

    assert read_stats(redis_client, epoch, HORIZONS) == before
    for signal in late:
        stored = redis_client.hgetall(outcome_key(epoch, signal["seq"]))
        assert stored["unscored"].startswith("late: emitted after its +1 bar closed") and not set(stored) & {"1", "5"}


def test_stats_entries_stop_at_max_entries_and_the_rest_is_counted_as_left_out(tmp_path, publisher, redis_client):
    start = start_now(20)
    path = write_bars_csv(tmp_path / "bars.csv", wave_closes(30, 70), start)
    scanner = replay(path, publisher, redis_client, SPECS, scans=5)
    scanner.keeper.max_entries = 3
    sent = [
        publisher.publish_signal(
            {"type": "BUY", "price": 1.0, "symbol": "BTCUSDT", "timeframe": "1m", "strategy": f"s{k}"}
            | {"bar_time": utc_iso(open_ms(20, start)), "source": "webhook"}
        )
        for k in range(5)
    ]

    for _ in range(3):
        scan(scanner, now_ms=LATER)

    epoch = sent[0]["epoch"]
    stats = read_stats(redis_client, epoch, HORIZONS)
    assert [(e["strategy"], e["source"], e["signals"]) for e in stats] == [(f"s{k}", "webhook", 1) for k in range(3)]
    assert stats_limits(redis_client, epoch, 3) == {"max_entries": 3, "not_counted": 2}
    assert all("1" in redis_client.hgetall(outcome_key(epoch, s["seq"])) for s in sent)  # scored all the same


def test_series_over_high_low_and_volume_are_kept_with_their_panes(tmp_path, publisher, redis_client):
    closes = wave_closes(30, 70)
    specs = "level:of=MFI(14),lower=20,upper=80;cross:fast=close,slow=BBANDS(20,2,2,0).upperband"
    replay(write_bars_csv(tmp_path / "bars.csv", closes), publisher, redis_client, specs, scans=5)

    chart = charts.read_chart(redis_client, "BTCUSDT", "1m", 1000)

    mfi, bands = parse_strategies(specs)
    assert chart["panes"][mfi.spec] == {"MFI(14)": "MFI(14)"}
    assert chart["panes"][bands.spec] == {"close": "price", "BBANDS(20,2,2,0).upperband": "price"}
    assert len(chart["indicators"][mfi.spec]["MFI(14)"]) == len(chart["candles"])
