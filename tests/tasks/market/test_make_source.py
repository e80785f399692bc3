"""make_source: the parsed MARKET_SOURCE to a source."""

from backend.settings import MarketSourceSpec
from tasks.market import CsvSource, SimulatedSource, make_source
from tasks.market.exchange import CcxtSource


def test_binance_is_ccxt_s_binance_on_the_api_url_or_binance_s_own():
    source = make_source(MarketSourceSpec("binance"), "http://127.0.0.1:8900")

    assert isinstance(source, CcxtSource) and source.name == "binance"
    assert source._markets.urls["api"]["public"] == "http://127.0.0.1:8900/api/v3"
    assert make_source(MarketSourceSpec("binance"))._markets.urls["api"]["public"] == "https://api.binance.com/api/v3"


def test_ccxt_exchange_gets_its_urls_rebased_and_spot_markets_only():
    source = make_source(MarketSourceSpec.parse("ccxt:kraken"), "http://127.0.0.1:8900")

    assert isinstance(source, CcxtSource) and source.name == "kraken"
    assert source._markets.urls["api"]["public"] == "http://127.0.0.1:8900"  # was https://api.kraken.com


def test_simulated():
    assert isinstance(make_source(MarketSourceSpec("simulated"), "https://api.binance.com"), SimulatedSource)


def test_csv_replays_the_file(tmp_path):
    path = tmp_path / "btc.csv"
    path.write_text("time,close\n1700000000,1\n1700000060,2\n")

    source = make_source(MarketSourceSpec.parse(f"csv:{path}"), "https://api.binance.com")

    assert isinstance(source, CsvSource) and source.replay and source.name == "csv"
    assert source.path == path
