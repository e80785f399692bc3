"""RedBeat's scheduler, made to survive a Redis restart instead of exiting."""

from __future__ import annotations

import logging

import redis
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis
from redis.exceptions import LockError

from backend import compat

log = logging.getLogger(__name__)


class RestartSafeRedBeatScheduler(RedBeatScheduler):
    """RedBeat that waits out a Redis outage, re-takes a lost lock and re-seeds a lost schedule."""

    def tick(self, min=min, **kwargs):
        """One beat: hold the lock, restore the schedule if Redis lost it, send what is due."""
        try:
            if self.lock_key and not self._hold_lock():
                return self.max_interval  # another beat schedules; stand by
            if not get_redis(self.app).exists(self.app.redbeat_conf.schedule_key):
                log.warning("beat: the schedule is gone from Redis (restarted without data); restoring it")
                self.setup_schedule()
            send_kwargs = compat.redbeat_maybe_due_kwargs(self)
            remaining = [self.maybe_due(entry, **send_kwargs) for entry in self.schedule.values()]
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat: Redis unavailable (%s); retrying", exc)
            return 1.0
        return min([t for t in remaining if t] + [self.max_interval])

    def _hold_lock(self) -> bool:
        """Extend our lock; when Redis lost it, try to take it again without blocking."""
        client = get_redis(self.app)
        if self.lock is None:
            self.lock = client.lock(self.lock_key, timeout=self.lock_timeout)
        try:
            self.lock.extend(int(self.lock_timeout), replace_ttl=True)
            return True
        except LockError:
            if self.lock.acquire(blocking=False):
                log.warning("beat: re-acquired the scheduling lock after Redis lost it")
                return True
            return False
