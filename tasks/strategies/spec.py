"""Parse strategy specs such as 'sma_cross:fast=5; level:of=RSI(14),lower=30,upper=70' into Strategy objects."""

from __future__ import annotations

from . import crosses  # noqa: F401  (registers the built-in strategies)
from .base import NUMBER, REGISTRY, Strategy, StrategyError
from .custom import load_strategy
from .generic import Cross, Level, key_values

GENERIC: dict[str, type[Cross] | type[Level]] = {"cross": Cross, "level": Level}
FORMS = "cross:fast=<A>,slow=<B>; level:of=<A>,lower=L,upper=U; py:<module>.<Class>[:key=value,…]"


def known_specs() -> str:
    """Every spec form: the presets with their defaults, then the generic ones, for error messages."""
    return "; ".join(cls().spec for cls in REGISTRY.values()) + "; " + FORMS


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
    if name in GENERIC:
        return GENERIC[name].parse(args)
    if name == "py":
        path, _, args = args.partition(":")
        return load_strategy(path, _numbers(args, None))
    cls = REGISTRY.get(name)
    if cls is None:
        raise StrategyError(f"unknown strategy {name!r}; valid: {known_specs()}")
    return cls(**_numbers(args, cls))


def _numbers(args: str, cls: type[Strategy] | None) -> dict[str, float]:
    """The key=number items of ARGS; with CLS, keys are checked against its parameters."""
    given = key_values(args, tuple(cls.defaults) if cls is not None else None, cls.name if cls is not None else "")
    for key, raw in given.items():
        if not NUMBER.fullmatch(raw):
            raise StrategyError(f"{key}={raw!r} is not a number")
    return {key: float(raw) for key, raw in given.items()}
