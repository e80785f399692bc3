"""Celery configuration, from the project's settings (REDIS_URL, SCAN_INTERVAL)."""

from backend.redis_client import strip_tls_query, tls_options
from backend.signal_schema import NOTIFY_QUEUE, REDBEAT_PREFIX
from tasks.config import worker_config

_settings = worker_config().settings
_tls = tls_options(_settings.redis_url)

broker_url = strip_tls_query(_settings.redis_url)
result_backend = broker_url
if _tls:  # Celery refuses a bare rediss:// URL; pass the TLS options explicitly instead.
    broker_use_ssl = _tls
    redis_backend_use_ssl = _tls

broker_connection_retry_on_startup = True
broker_transport_options = {"visibility_timeout": max(300, 5 * _settings.scan_interval)}
task_serializer = result_serializer = "json"
accept_content = ["json"]
result_expires = 3600
timezone = "UTC"
enable_utc = True

# A scan acknowledged only when done: a worker killed mid-scan leaves it for another.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_send_task_events = True  # Flower
task_send_sent_event = True

beat_scheduler = "tasks.beat_scheduler:RestartSafeRedBeatScheduler"
beat_max_loop_interval = min(5, _settings.scan_interval)
# RedBeat: the lock must outlive the longest loop, or a second beat takes over mid-run.
redbeat_lock_timeout = beat_max_loop_interval * 5
# redbeat_redis_url (the broker's) is set by tasks.beat_scheduler, in the beat only: see there why.
if _tls:
    redbeat_redis_use_ssl = _tls
redbeat_key_prefix = REDBEAT_PREFIX
# Notifications on their own queue: a slow destination never holds a scan back (the Procfile worker consumes both).
task_routes = {"tasks.notify.*": {"queue": NOTIFY_QUEUE}}
beat_schedule = {
    "scan-market": {
        "task": "tasks.scan.scan_market",
        "schedule": float(_settings.scan_interval),
        # A scan that waited a whole interval in the queue is stale: the next one replaces it.
        "options": {"expires": float(_settings.scan_interval)},
    },
    # Reads new history entries through the consumer group: a run that waited is replaced by the next one,
    # and nothing is lost meanwhile (entries stay unread, or pending, in the group).
    "notify-dispatch": {"task": "tasks.notify.dispatch", "schedule": 1.0, "options": {"expires": 5.0}},
}
# Beat waits for Redis (at start and after a restart) instead of exiting.
redbeat_redis_options = {"retry_period": -1}
