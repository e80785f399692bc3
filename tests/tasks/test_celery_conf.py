"""`celery inspect conf` (what Flower's Config view shows) never shows the Redis password; the beat still
schedules with RedBeat on that Redis."""

from __future__ import annotations

import json

import pytest
import redis
from celery import Celery

from backend.embedded_redis import EmbeddedRedis
from backend.signal_schema import HISTORY_KEY
from harness.polling import wait_until

USER, PASSWORD = "qs", "s3cret-redis-pass-0123"


@pytest.fixture
def redis_with_password():
    """A redis-server of its own whose user `qs` has a password (the default user is left as it is)."""
    acl = ("--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    with EmbeddedRedis(extra_args=acl, auth=(USER, PASSWORD)) as server:
        yield f"redis://{USER}:{PASSWORD}@127.0.0.1:{server.port}/0"


def test_inspect_conf_masks_every_redis_url_and_the_beat_still_schedules(start_celery, redis_with_password):
    worker = start_celery("worker", REDIS_URL=redis_with_password)
    start_celery("beat", REDIS_URL=redis_with_password)

    control = Celery("inspect", broker=redis_with_password, set_as_current=False)
    try:
        replies = wait_until(lambda: control.control.inspect(timeout=3).conf(), 30, message="inspect conf answered")
        [conf] = replies.values()
        assert PASSWORD not in json.dumps(replies), {k: v for k, v in conf.items() if PASSWORD in str(v)}
        assert conf["broker_url"] == redis_with_password.replace(PASSWORD, "********")
        assert "redbeat_redis_url" not in conf or PASSWORD not in conf["redbeat_redis_url"]
        # The beat's RedBeat reached that Redis: its dispatch schedule ran on the worker (the group's stream).
        client = redis.Redis.from_url(redis_with_password)
        wait_until(lambda: client.exists(HISTORY_KEY), 60, 0.1, "the beat's first notify-dispatch run")
        assert client.keys("qs:redbeat:*"), "RedBeat's schedule is not in Redis"
        assert worker.alive()
        client.close()
    finally:
        control.close()
