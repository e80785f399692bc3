"""The worker's configuration: the settings (MARKET_SOURCE already parsed) and STRATEGIES parsed once."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from backend.settings import ConfigError, Settings, load_settings
from tasks.strategies import Strategy, StrategyError, parse_strategies


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker, beat and Flower processes run with, checked when they start."""

    settings: Settings
    strategies: tuple[Strategy, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """Parse the strategies of SETTINGS; raise ConfigError naming STRATEGIES when they are invalid."""
        try:
            strategies = parse_strategies(settings.strategies)
        except StrategyError as exc:
            raise ConfigError(f"STRATEGIES={settings.strategies!r}: {exc}") from None
        return cls(settings, tuple(strategies))


@functools.cache
def worker_config() -> WorkerConfig:
    """This process's worker configuration, read from the environment on first use."""
    return WorkerConfig.from_settings(load_settings())
