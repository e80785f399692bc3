"""The one Celery app of the worker, beat and Flower processes (`celery -A tasks …` finds it here)."""

from __future__ import annotations

from celery import Celery

from backend.settings import ConfigError
from tasks.config import worker_config

try:  # fail at start-up, with the reason, rather than on the first scan
    worker_config()
except ConfigError as exc:
    raise SystemExit(f"configuration error: {exc}") from None

app = Celery("quantum_signals", include=["tasks.scan", "tasks.notify"])
app.config_from_object("celeryconfig")
