"""Parse strategy specs such as 'sma_cross:fast=5; rsi' into Strategy objects."""

from __future__ import annotations

import re

from . import crosses  # noqa: F401  (registers the built-in strategies)
from .base import REGISTRY, Strategy, StrategyError

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def known_specs() -> str:
    """Every registered strategy with its defaults, for error messages."""
    return "; ".join(cls().spec for cls in REGISTRY.values())


def parse_strategies(text: str) -> list[Strategy]:
    """Parse ';'-separated specs, dropping repeats of the same canonical spec."""
    parts = [part for part in (text or "").split(";") if part.strip()]
    if not parts:
        raise StrategyError(f"no strategy given; expected name:key=value,... with one of: {known_specs()}")
    strategies: dict[str, Strategy] = {}
    for part in parts:
        strategy = parse_strategy(part)
        strategies.setdefault(strategy.spec, strategy)
    return list(strategies.values())


def parse_strategy(spec: str) -> Strategy:
    """Parse one spec 'name' or 'name:key=value,...'; missing parameters take defaults."""
    try:
        return _parse(spec)
    except StrategyError as error:
        raise StrategyError(f"invalid strategy {spec.strip()!r}: {error}") from None


def _parse(spec: str) -> Strategy:
    name, _, args = spec.partition(":")
    name = name.strip().lower()
    if not name:
        raise StrategyError(f"no strategy name; expected one of: {known_specs()}")
    cls = REGISTRY.get(name)
    if cls is None:
        raise StrategyError(f"unknown strategy {name!r}; valid: {known_specs()}")
    params: dict[str, float] = {}
    for item in args.split(","):
        if not item.strip():
            continue
        key, equals, raw = (part.strip() for part in item.partition("="))
        key = key.lower()
        if not equals or not key:
            raise StrategyError(f"expected key=value, got {item.strip()!r}")
        if key not in cls.defaults:
            raise StrategyError(f"unknown parameter {key!r} for {name}; valid: {', '.join(cls.defaults)}")
        if key in params:
            raise StrategyError(f"parameter {key!r} given twice")
        if not _NUMBER.fullmatch(raw):
            raise StrategyError(f"{key}={raw!r} is not a number")
        params[key] = float(raw)
    return cls(**params)
