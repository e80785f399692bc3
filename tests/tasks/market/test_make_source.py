"""make_source: the parsed MARKET_SOURCE to a source."""

from backend.settings import MarketSourceSpec
from tasks.market import BinanceSource, CsvSource, SimulatedSource, make_source


def test_binance_uses_the_api_url():
    source = make_source(MarketSourceSpec("binance"), "https://api.binance.com")

    assert isinstance(source, BinanceSource) and source.api_url == "https://api.binance.com"
    assert source.name == "binance"


def test_simulated():
    assert isinstance(make_source(MarketSourceSpec("simulated"), "https://api.binance.com"), SimulatedSource)


def test_csv_replays_the_file(tmp_path):
    path = tmp_path / "btc.csv"
    path.write_text("time,close\n1700000000,1\n1700000060,2\n")

    source = make_source(MarketSourceSpec.parse(f"csv:{path}"), "https://api.binance.com")

    assert isinstance(source, CsvSource) and source.replay and source.name == "csv"
    assert source.path == path
