"""The beat's scheduler: RedBeat, made to survive a Redis restart instead of exiting.

The class reaches into RedBeat's internals, so it is built in the compat fence (backend/compat.py); the
Procfile names it here: `celery -A tasks beat -S tasks.beat_scheduler:RestartSafeRedBeatScheduler`.
"""

from typing import Any

from celery import Celery

from backend import compat


# The base is built by a call (in the compat fence, so that only the beat imports RedBeat), and RedBeat has no types.
class RestartSafeRedBeatScheduler(compat.restart_safe_redbeat_scheduler()):  # type: ignore[misc]
    """The beat's scheduler; RedBeat's Redis URL is set here, in the beat only."""

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        """Point RedBeat at the broker's Redis: the setting lives in the beat's configuration only, since a worker's
        answers `celery inspect conf` (Flower's Config view) and Celery masks the password of broker_url there but
        not of redbeat_redis_url."""
        app.conf.redbeat_redis_url = app.conf.broker_url
        super().__init__(app, *args, **kwargs)
