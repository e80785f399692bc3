"""Notification tasks: the dispatcher (history's consumer group → one delivery per signal and destination) and delivery.

docs/architecture.md, "Notifications": at least once. The dispatcher acknowledges history entries only after their
deliveries are queued, so a crash in between queues them again (same Idempotency-Key), never loses them.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis
import requests
from celery import Task
from redis.lock import Lock
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from backend import destinations
from backend.destinations import Destination
from backend.history import decode_entry
from backend.redis_client import make_redis
from backend.signal_schema import (
    HISTORY_KEY,
    NOTIFY_GROUP,
    NOTIFY_PROBE_PREFIX,
    NOTIFY_QUEUE,
    NOTIFY_RESEND_KEY,
    NOTIFY_SLOW_PREFIX,
    NOTIFY_SLOW_TTL_S,
)
from tasks.attempt_deadline import attempt_deadline
from tasks.celery import app
from tasks.config import worker_config

# A history entry as a decoded client (make_redis) reads it: (id, {field: value}).
Entry = tuple[str, dict[str, str]]

log = logging.getLogger(__name__)
# Apprise's own lines can quote a service's tokens (a chat id, a webhook path); ours name the redacted label.
logging.getLogger("apprise").setLevel(logging.CRITICAL)

CONSUMER = "dispatcher"
# A dispatcher that read entries and did not ack them within this is taken to be dead (a run acks within
# DISPATCH_BUDGET_S unless Redis or the process went away; a repeat carries the same Idempotency-Key). Chaos row
# 12f: after a Redis restart the entries of the run it cut short wait this long.
CLAIM_IDLE_MS = 15_000
BATCH = 500
DISPATCH_BUDGET_S = 0.8  # a run ends before the next one is due
BACKOFF_BASE_S = 1.0
# A Celery ETA longer than the Redis broker's visibility timeout (celeryconfig: at least 300 s) is delivered a
# second time: longer waits (a long Retry-After) are taken in steps of at most this.
MAX_COUNTDOWN_S = 240.0
BACKOFF_CAP_S = MAX_COUNTDOWN_S
RETRY_STATUSES = frozenset({408, 425, 429})
SLOW_AFTER_S = 1.0  # an attempt still waiting after this marks its destination slow
# The lease of a destination's attempt in flight, renewed every SLOW_AFTER_S while it runs: a worker killed
# mid-attempt holds its destination at most this long.
LEASE_TTL_S = 10.0
# What an attempt reads of a webhook's answer: its status line and headers, never the body (stream=True, then
# closed), so a receiver that answers gigabytes costs nothing. http.client refuses more than 100 header lines
# and any line over 64 KiB: MAX_ANSWER_BYTES bounds what a webhook's answer can cost, NOTIFY_TIMEOUT_S its time.
MAX_ANSWER_BYTES = 100 * 65_536
# Apprise's plugins read an answer's body (some parse it): at most this much of it, the rest never read.
MAX_APPRISE_ANSWER_BYTES = 1 << 20
BUSY_WAIT_S = 0.05  # the first wait behind another attempt in flight to the same destination


@functools.cache
def _client() -> redis.Redis:
    return make_redis(worker_config().settings.redis_url)


_local = threading.local()


def _session() -> requests.Session:
    """A session per thread (`-P threads` workers share the process); its connections last one attempt."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _emitted(signal: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(signal.get("emitted_at"))).timestamp()
    except ValueError:
        return None


@app.task(name="tasks.notify.dispatch", ignore_result=True)
def dispatch() -> int:
    """Queue the deliveries of new (and stale pending) history entries and of resent dead letters; return how many."""
    client = _client()
    queued = _drain_resends(client)
    deadline = time.monotonic() + DISPATCH_BUDGET_S
    entries = _claim_stale(client)
    while True:
        entries += _read_new(client)
        if not entries:
            return queued
        queued += _enqueue(client, entries)
        if time.monotonic() > deadline:
            return queued
        entries = []


def _create_group(client: redis.Redis) -> None:
    # No group on an existing history: notifications are new to it, so they start from now. (A history the
    # publisher starts gets the group at its first entry, so after Redis lost its data nothing is skipped.)
    try:
        client.xgroup_create(HISTORY_KEY, NOTIFY_GROUP, id="$", mkstream=True)
        log.info("created the consumer group %r on %s", NOTIFY_GROUP, HISTORY_KEY)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read_new(client: redis.Redis) -> list[Entry]:
    try:
        # RESP2 on a decoded client (make_redis): [[stream, [(id, {field: value})]]] in str, or None.
        reply = cast(
            list[tuple[str, list[Entry]]] | None,
            client.xreadgroup(NOTIFY_GROUP, CONSUMER, {HISTORY_KEY: ">"}, count=BATCH),
        )
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        _create_group(client)
        return []
    return list(reply[0][1]) if reply else []


def _claim_stale(client: redis.Redis) -> list[Entry]:
    try:
        reply = client.xautoclaim(HISTORY_KEY, NOTIFY_GROUP, CONSUMER, CLAIM_IDLE_MS, "0-0", count=BATCH)
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        return []
    # Entries trimmed from the capped history while pending come back as ids only: ack them too.
    deleted = reply[2] if len(reply) > 2 else []
    if deleted:
        log.warning("%d pending history entries were trimmed before their notifications were queued", len(deleted))
        client.xack(HISTORY_KEY, NOTIFY_GROUP, *deleted)
    return list(reply[1])


def _enqueue(client: redis.Redis, entries: list[Entry]) -> int:
    config = worker_config()
    max_age = config.settings.notify_max_age_s
    queued, ids = 0, []
    for entry_id, fields in entries:
        ids.append(entry_id)
        signal = decode_entry(fields or {})
        if signal is None or not config.destinations:
            continue
        since = _emitted(signal) or time.time()
        if time.time() - since > max_age:  # e.g. notifications switched on over an old backlog
            log.info("not notifying seq %s: older than NOTIFY_MAX_AGE_S=%d", signal.get("seq"), max_age)
            continue
        for destination in config.destinations:
            if destination.matches(signal):
                deliver.apply_async((destination.id, fields["sig"], since), queue=NOTIFY_QUEUE)
                queued += 1
    client.xack(HISTORY_KEY, NOTIFY_GROUP, *ids)
    return queued


def _drain_resends(client: redis.Redis) -> int:
    letters = client.lrange(NOTIFY_RESEND_KEY, 0, BATCH - 1)
    for text in letters:
        letter = json.loads(text)
        # A resend is a new attempt: its age counts from now, not from the old signal.
        deliver.apply_async((letter["dest"], letter["sig"], time.time()), queue=NOTIFY_QUEUE)
    if letters:
        # Trimmed after queueing (a crash in between resends twice, never zero times); later pushes go to the tail.
        client.ltrim(NOTIFY_RESEND_KEY, len(letters), -1)
        log.info("queued %d resent dead letters", len(letters))
    return len(letters)


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: delivered, worth retrying (after RETRY_AFTER seconds if the destination said), or not."""

    ok: bool
    retry: bool = False
    error: str = ""
    retry_after: float | None = None
    slow: bool = False  # timed out or refused the connection
    busy: bool = False  # not attempted: another attempt to the destination is in flight (not known slow)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), parsed as the exchange client does."""
    if not value:
        return None
    try:
        return Retry().parse_retry_after(value)
    except InvalidHeader:
        return None


def post_webhook(destination: Destination, raw: str, secret: str, timeout: float) -> Outcome:
    """POST the stored signal, signed, within one deadline of TIMEOUT seconds; classify the answer."""
    body = raw.encode("utf-8")
    signal = json.loads(raw)
    headers = {
        "Content-Type": "application/json",
        destinations.IDEMPOTENCY_HEADER: f"{signal.get('epoch')}:{signal.get('seq')}",
        destinations.SIGNATURE_HEADER: destinations.signature_header(secret, body),
        "User-Agent": "quantum-signals-notify/1",
    }
    with attempt_deadline(timeout) as deadline:
        try:
            # No redirects: a receiver's URL is the operator's choice, never the receiver's (and requests would
            # turn a 301/302 POST into a GET without the body). stream: the body is never read.
            answer = _session().post(
                destination.url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = (
                f"no answer within NOTIFY_TIMEOUT_S={timeout:g}" if deadline.expired.is_set() else type(exc).__name__
            )
            return Outcome(False, retry=True, error=error, slow=True)
        except requests.RequestException as exc:
            return Outcome(False, error=type(exc).__name__)
        answer.close()  # the body is never read, and the connection is not kept
    status = answer.status_code
    if 200 <= status < 300:
        return Outcome(True)
    if 300 <= status < 400:
        # Not retried: the same URL answers the same way until the operator configures where it points.
        where = destinations.redact_notify_url(answer.headers.get("Location") or "")
        return Outcome(False, error=f"HTTP {status} redirect to {where} not followed; set the destination's final URL")
    error = f"HTTP {status}"
    if status >= 500 or status in RETRY_STATUSES:
        return Outcome(False, retry=True, error=error, retry_after=_retry_after(answer.headers.get("Retry-After")))
    return Outcome(False, error=error)


def send_apprise(destination: Destination, raw: str, timeout: float) -> Outcome:
    """Send the human message through Apprise within one deadline of TIMEOUT seconds, redirects not followed; any
    failure is retried (Apprise does not say which failures last)."""
    import apprise

    # http_redirects=False: Apprise's switch for every plugin (a URL's own `redirect=yes` could turn it back on;
    # parse_destination refuses that).
    sender = apprise.Apprise(asset=apprise.AppriseAsset(http_redirects=False))
    sender.add(destination.url)
    with attempt_deadline(timeout, answer_bytes=MAX_APPRISE_ANSWER_BYTES) as deadline:
        # Apprise's own call timeout returns on time; the deadline ends the thread it would leave reading.
        result = sender.notify(body=destinations.message(json.loads(raw)), timeout=timeout)
        expired = deadline.expired.is_set()
    if result:
        return Outcome(True)
    if expired or getattr(result, "status", None) == apprise.AppriseResultStatus.TIMEOUT:
        return Outcome(False, retry=True, error=f"apprise: no answer within NOTIFY_TIMEOUT_S={timeout:g}", slow=True)
    return Outcome(False, retry=True, error=f"apprise {getattr(result, 'status', 'failed')}")


def _busy_wait(waits: int) -> float:
    """How long to wait behind another attempt in flight: from 25-50 ms, doubling, at most SLOW_AFTER_S (after
    which a hanging attempt marks its destination slow and the waits become backoff steps)."""
    step = min(SLOW_AFTER_S, BUSY_WAIT_S * 2 ** min(waits, 10))
    return random.uniform(step / 2, step)


def _backoff(retries: int) -> float:
    """Exponential with equal jitter: half the step fixed, half random, so retries of one outage spread out."""
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**retries)
    return step / 2 + random.uniform(0, step / 2)


def _lease(client: redis.Redis, destination: Destination) -> Lock:
    """The destination's lease: whoever holds it has the one attempt in flight to that destination."""
    # thread_local=False: the watch thread renews the lease the attempt's thread took.
    return client.lock(NOTIFY_PROBE_PREFIX + destination.id, timeout=LEASE_TTL_S, thread_local=False)


def _attempt(client: redis.Redis, destination: Destination, raw: str) -> Outcome:
    """One attempt, if no other is in flight to DESTINATION; else a retry result without holding this process."""
    settings = worker_config().settings
    slow_key = NOTIFY_SLOW_PREFIX + destination.id
    # One attempt in flight per destination, always (not only once it is known slow): a destination that starts
    # to hang holds at most one worker process, and its other deliveries wait their turn without holding one.
    lease = _lease(client, destination)
    if not lease.acquire(blocking=False):
        if client.exists(slow_key):
            return Outcome(False, retry=True, error="destination slow, one attempt already in flight")
        return Outcome(False, retry=True, error="an attempt to this destination is in flight", busy=True)
    done = threading.Event()

    def watch() -> None:  # still waiting after SLOW_AFTER_S: mark the destination slow; keep the lease while it runs
        while not done.wait(SLOW_AFTER_S):
            try:
                client.set(slow_key, 1, ex=NOTIFY_SLOW_TTL_S)
                lease.reacquire()
            except redis.RedisError as exc:  # Redis away, or the lease lost with its data: the attempt goes on
                log.warning("could not hold the lease of %s: %s", destination.label, exc)

    watcher = threading.Thread(target=watch, name="notify-lease", daemon=True)
    watcher.start()
    try:
        if destination.kind == destinations.WEBHOOK:
            result = post_webhook(destination, raw, settings.notify_webhook_secret, settings.notify_timeout_s)
        else:
            result = send_apprise(destination, raw, settings.notify_timeout_s)
    finally:
        done.set()
        watcher.join()
        try:
            lease.release()
        except redis.RedisError:  # expired with Redis's data, or Redis away: it lapses after LEASE_TTL_S
            pass
    if result.slow:
        client.set(slow_key, 1, ex=NOTIFY_SLOW_TTL_S)
    elif result.ok:
        client.delete(slow_key)
    return result


@app.task(name="tasks.notify.deliver", bind=True, ignore_result=True, max_retries=None, acks_late=True)
def deliver(
    self: Task[Any, Any],
    destination_id: str,
    raw: str,
    since: float,
    not_before: float = 0.0,
    failures: int | None = None,
) -> None:
    """Deliver one stored signal to one destination; retry until NOTIFY_MAX_AGE_S after SINCE, then dead-letter.

    FAILURES counts the failed attempts and the waits behind a slow destination (what the backoff grows with);
    the other retries were short waits behind an attempt in flight (None: a task queued before that was told apart).
    """
    failures = self.request.retries if failures is None else failures
    wait = not_before - time.time()
    if wait > 0:  # the rest of a long wait
        countdown = min(wait, MAX_COUNTDOWN_S)
        raise self.retry(countdown=countdown, kwargs={"not_before": not_before, "failures": failures})
    config, client = worker_config(), _client()
    attempts = failures + 1
    destination = config.destination(destination_id)
    if destination is None:
        destinations.add_dead_letter(client, destination_id, "unknown", "?", raw, "destination no longer configured", 1)
        log.warning("notification for destination %s dead-lettered: no longer configured", destination_id)
        return
    result = _attempt(client, destination, raw)
    if result.ok:
        destinations.count(client, destination.kind, "sent")
        return
    error = result.error
    if result.retry:
        if result.busy:
            delay = _busy_wait(self.request.retries - failures)
        elif result.retry_after is not None:
            delay = result.retry_after
        else:
            delay = _backoff(failures)
        if time.time() + delay <= since + config.settings.notify_max_age_s:
            if result.busy:  # not a failure: no count, no backoff step
                log.debug("notification to %s waits %.2f s: %s", destination.label, delay, error)
                raise self.retry(countdown=delay, kwargs={"failures": failures})
            destinations.count(client, destination.kind, "retried")
            log.info("notification to %s failed (%s); retry %d in %.1f s", destination.label, error, attempts, delay)
            later = {"not_before": time.time() + delay, "failures": attempts}
            raise self.retry(countdown=min(delay, MAX_COUNTDOWN_S), kwargs=later)
        error += f"; gave up {config.settings.notify_max_age_s} s (NOTIFY_MAX_AGE_S) after the signal"
    letter = destinations.add_dead_letter(
        client, destination.id, destination.kind, destination.label, raw, error, attempts
    )
    log.warning(
        "notification to %s dead-lettered as %s after %d attempts: %s", destination.label, letter, attempts, error
    )
