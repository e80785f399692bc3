"""WorkerConfig: the worker's settings with the strategies parsed once, and the errors it stops a start with."""

import dataclasses

import pytest

from backend.settings import ConfigError, Settings
from tasks.config import WorkerConfig


def test_strategies_are_parsed_into_objects_once():
    settings = dataclasses.replace(Settings(), strategies="sma_cross:fast=3,slow=5; rsi; sma_cross:fast=3,slow=5")

    config = WorkerConfig.from_settings(settings)

    assert [s.spec for s in config.strategies] == ["sma_cross:fast=3,slow=5", "rsi:period=14,lower=30,upper=70"]
    assert config.settings is settings


@pytest.mark.parametrize(
    "strategies, words",
    [
        ("bogus", "STRATEGIES='bogus': invalid strategy 'bogus': unknown strategy"),
        ("sma_cross:fast=30,slow=5", "STRATEGIES='sma_cross:fast=30,slow=5': invalid strategy"),
    ],
)
def test_bad_strategies_are_a_config_error_naming_the_variable(strategies, words):
    with pytest.raises(ConfigError) as error:
        WorkerConfig.from_settings(dataclasses.replace(Settings(), strategies=strategies))

    assert str(error.value).startswith(words)


def test_an_exchange_ccxt_does_not_list_stops_the_start_with_close_matches():
    settings = Settings.from_env({"MARKET_SOURCE": "ccxt:binanse"})

    with pytest.raises(ConfigError) as error:
        WorkerConfig.from_settings(settings)

    assert str(error.value).startswith(
        "MARKET_SOURCE=ccxt:binanse: ccxt has no exchange 'binanse'; did you mean 'binance'"
    )
