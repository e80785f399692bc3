"""The worker's configuration: the settings (MARKET_SOURCE already parsed), STRATEGIES and destinations parsed once."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from backend.destinations import Destination, load_destinations
from backend.settings import ConfigError, Settings, load_settings
from tasks.strategies import Strategy, StrategyError, parse_strategies


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker, beat and Flower processes run with, checked when they start."""

    settings: Settings
    strategies: tuple[Strategy, ...]
    destinations: tuple[Destination, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        """Parse the strategies and destinations of SETTINGS; raise ConfigError naming the variable when invalid."""
        try:
            strategies = parse_strategies(settings.strategies)
        except StrategyError as exc:
            raise ConfigError(f"STRATEGIES={settings.strategies!r}: {exc}") from None
        if settings.market_source.kind == "ccxt":
            from tasks.market.base import UnknownMarket
            from tasks.market.exchange import check_exchange_id  # imports ccxt: only when used

            try:
                check_exchange_id(settings.market_source.exchange)
            except UnknownMarket as exc:
                raise ConfigError(f"MARKET_SOURCE={settings.market_source}: {exc}") from None
        return cls(settings, tuple(strategies), load_destinations(settings))

    def destination(self, destination_id: str) -> Destination | None:
        """The configured destination of that id, None when it is no longer configured."""
        return next((d for d in self.destinations if d.id == destination_id), None)


@functools.cache
def worker_config() -> WorkerConfig:
    """This process's worker configuration, read from the environment on first use."""
    return WorkerConfig.from_settings(load_settings())
