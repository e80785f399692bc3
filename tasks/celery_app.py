"""The one Celery app of the worker, beat and Flower processes."""

from celery import Celery

from backend.settings import ConfigError, load_settings
from tasks.strategies import StrategyError, parse_strategies

try:  # fail at start-up, with the reason, rather than on the first scan
    _strategies = load_settings().strategies
    parse_strategies(_strategies)
except ConfigError as exc:
    raise SystemExit(f"configuration error: {exc}") from None
except StrategyError as exc:
    raise SystemExit(f"configuration error: STRATEGIES={_strategies!r}: {exc}") from None

app = Celery("quantum_signals", include=["tasks.scan"])
app.config_from_object("celeryconfig")
