"""The beat's scheduler: RedBeat, made to survive a Redis restart instead of exiting.

The class reaches into RedBeat's internals, so it is built in the compat fence (backend/compat.py); the
Procfile names it here: `celery -A tasks beat -S tasks.beat_scheduler:RestartSafeRedBeatScheduler`.
"""

from backend import compat

RestartSafeRedBeatScheduler = compat.restart_safe_redbeat_scheduler()
