"""Settings from the environment: defaults, overrides and clear errors."""

import pytest

from backend.settings import ConfigError, MarketSourceSpec, Settings


def test_defaults_match_the_design():
    settings = Settings.from_env({})

    assert settings.redis_url == "redis://localhost:6379/0"
    assert (settings.port, settings.scan_interval, settings.history_maxlen) == (5000, 60, 10000)
    assert settings.signal_channel == "quantum_signals"
    assert settings.symbols == ("BTCUSDT",) and settings.timeframes == ("1m",) and settings.timeframe == "1m"
    assert settings.exchange_api_url == ""
    assert settings.market_source == MarketSourceSpec("binance") and settings.strategies == "sma_cross:fast=9,slow=21"
    assert settings.auth_tokens == () and settings.cors_origins == ()
    assert settings.fast_broadcast is True
    assert settings.stats_max_entries == 500
    assert (settings.slow_client_max_packets, settings.slow_client_max_bytes) == (1000, 1048576)


def test_an_empty_environment_gives_the_field_defaults():
    assert Settings.from_env({}) == Settings()
    assert (
        Settings.from_env({name: "" for name in ("PORT", "SIGNAL_CHANNEL", "MARKET_SOURCE", "STRATEGIES")})
        == Settings()
    )


def test_overrides_are_parsed():
    settings = Settings.from_env(
        {
            "SYMBOLS": "btcusdt, eth/usdt, BTC-USDT, BTC/USDT:USDT",
            "SIGNALS_AUTH_TOKEN": "a,b",
            "PORT": "8080",
            "MARKET_SOURCE": "csv:data.csv",
            "CORS_ORIGINS": "https://x.example",
            "FAST_BROADCAST": "0",
            "STATS_MAX_ENTRIES": "20",
        }
    )

    assert settings.symbols == ("BTCUSDT", "ETH/USDT", "BTC-USDT", "BTC/USDT:USDT")
    assert settings.auth_tokens == ("a", "b") and settings.port == 8080
    assert settings.market_source == MarketSourceSpec("csv", "data.csv") and settings.cors_origins == (
        "https://x.example",
    )
    assert settings.fast_broadcast is False
    assert settings.stats_max_entries == 20


def test_several_timeframes_are_kept_in_order():
    settings = Settings.from_env({"TIMEFRAME": "1m, 15m,1h"})

    assert settings.timeframes == ("1m", "15m", "1h") and settings.timeframe == "1m"


def test_exchange_api_url_wins_over_its_old_name_binance_api_url():
    assert Settings.from_env({"BINANCE_API_URL": "http://127.0.0.1:1/"}).exchange_api_url == "http://127.0.0.1:1"
    both = {"BINANCE_API_URL": "http://127.0.0.1:1", "EXCHANGE_API_URL": "https://127.0.0.1:2"}
    assert Settings.from_env(both).exchange_api_url == "https://127.0.0.1:2"


def test_ccxt_market_source_names_the_exchange():
    assert Settings.from_env({"MARKET_SOURCE": "ccxt:kraken"}).market_source == MarketSourceSpec(
        "ccxt", exchange="kraken"
    )


@pytest.mark.parametrize("text", ["binance", "simulated", "ccxt:binance", "csv:data/btc.csv", "csv:c:/a b.csv"])
def test_market_source_spec_reads_back_as_written(text):
    assert str(MarketSourceSpec.parse(text)) == text


@pytest.mark.parametrize(
    "env, words",
    [
        ({"SCAN_INTERVAL": "soon"}, "SCAN_INTERVAL='soon' is not an integer"),
        ({"SCAN_INTERVAL": "0"}, "SCAN_INTERVAL=0 is out of range"),
        ({"PORT": "70000"}, "PORT=70000 is out of range"),
        ({"STATS_MAX_ENTRIES": "0"}, "STATS_MAX_ENTRIES=0 is out of range; it must be between 1 and 100000"),
        ({"STATS_MAX_ENTRIES": "many"}, "STATS_MAX_ENTRIES='many' is not an integer"),
        ({"REDIS_URL": "localhost:6379"}, "is not a Redis URL"),
        ({"MARKET_SOURCE": "kraken"}, "MARKET_SOURCE='kraken' is unknown; use binance, ccxt:<exchange id>"),
        ({"MARKET_SOURCE": "ccxt:"}, "needs a ccxt exchange id after ccxt:, e.g. ccxt:binance"),
        ({"MARKET_SOURCE": "ccxt:Bin ance"}, "needs a ccxt exchange id"),
        ({"MARKET_SOURCE": "csv:"}, "needs a file path"),
        ({"TIMEFRAME": "7m"}, "TIMEFRAME='7m' is unknown"),
        ({"TIMEFRAME": "1m,7m,2x"}, "TIMEFRAME='1m,7m,2x' is unknown: '7m', '2x' is not a timeframe"),
        ({"TIMEFRAME": " , "}, "TIMEFRAME is empty"),
        ({"TIMEFRAME": "1m,1h,1m"}, "lists 1m twice"),
        ({"SYMBOLS": ","}, "SYMBOLS is empty"),
        ({"SYMBOLS": "BTC USDT"}, "SYMBOLS has invalid entries"),
        ({"SYMBOLS": "!!!"}, "SYMBOLS has invalid entries"),
        ({"SYMBOLS": "A" * 33}, "SYMBOLS has invalid entries"),
        ({"BINANCE_API_URL": "api.binance.com"}, "BINANCE_API_URL='api.binance.com' must start with http"),
        ({"EXCHANGE_API_URL": "http://127.0.0.1:1/api/v3"}, "name only a host and optional port"),
        ({"FAST_BROADCAST": "yes"}, "FAST_BROADCAST='yes' is not a switch; set it to 1 (on) or 0 (off)"),
        ({"SLOW_CLIENT_MAX_PACKETS": "100"}, "SLOW_CLIENT_MAX_PACKETS=100 is out of range; it must be at least 250"),
        ({"SLOW_CLIENT_MAX_BYTES": "lots"}, "SLOW_CLIENT_MAX_BYTES='lots' is not an integer"),
        (
            {"SLOW_CLIENT_MAX_BYTES": "200000", "MAX_SIGNAL_BYTES": "131072"},
            "SLOW_CLIENT_MAX_BYTES=200000 is below twice MAX_SIGNAL_BYTES (131072): a client reading along could be "
            "cut; raise it to at least 262144",
        ),
    ],
)
def test_bad_values_name_the_setting_and_the_fix(env, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)
