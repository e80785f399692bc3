"""deploy/redis-acl.md's ACL users on a real redis-server: the publisher may only PUBLISH on the signal channel;
a web process and a worker and beat run with their own users and are refused nothing.

The ACL lines are read out of the document's ```acl block, so the recipe and the test cannot drift. An `admin`
user is added here (and only here) to read Redis's ACL LOG, where every refusal is recorded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from backend.embedded_redis import EmbeddedRedis
from harness.polling import wait_until
from harness.receiver import Receiver

DOC = Path(__file__).resolve().parents[2] / "deploy" / "redis-acl.md"
CHANNEL = "quantum_signals"
ADMIN = ("admin", "test-admin-password-0123")
TOKEN = "acl-publish-token"
SECRET = "acl-webhook-secret-0123456789"


def acl_lines() -> list[str]:
    """The lines of the document's ```acl block."""
    [block] = re.findall(r"^```acl\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    return [line for line in block.splitlines() if line.strip()]


def password(user: str) -> str:
    """USER's password in the recipe (its `>…` rule)."""
    [line] = [line for line in acl_lines() if line.split()[1] == user]
    return next(rule[1:] for rule in line.split() if rule.startswith(">"))


@pytest.fixture
def acl_redis(tmp_path):
    """A redis-server of its own loading the recipe's ACL file (plus the test's admin)."""
    path = tmp_path / "users.acl"
    path.write_text("\n".join([*acl_lines(), f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all"]) + "\n")
    with EmbeddedRedis(extra_args=("--aclfile", str(path)), auth=ADMIN) as server:
        server.as_user = lambda user: redis.Redis(
            port=server.port, username=user, password=password(user), socket_timeout=5, decode_responses=True
        )
        server.admin = redis.Redis(port=server.port, username=ADMIN[0], password=ADMIN[1], decode_responses=True)
        server.url_of = lambda user: f"redis://{user}:{password(user)}@127.0.0.1:{server.port}/0"
        yield server
        server.admin.close()


def refusals(server, *users: str) -> list[dict]:
    """ACL LOG entries of USERS (what Redis refused them)."""
    return [entry for entry in server.admin.acl_log(count=1000) if entry.get("username") in users]


REFUSED = [
    ("PUBLISH", "quantum_signals:outcomes", "x"),
    ("PUBLISH", "flask-socketio", "x"),
    ("PUBLISH", "other", "x"),
    ("SUBSCRIBE", CHANNEL),
    ("PSUBSCRIBE", "*"),
    ("GET", "qs:epoch"),
    ("SET", "qs:epoch", "forged"),
    ("DEL", "qs:history"),
    ("XADD", "qs:history", "*", "sig", "{}"),
    ("XRANGE", "qs:history", "-", "+"),
    ("INCR", "qs:seq"),
    ("LPUSH", "celery", "{}"),
    ("EVAL", "return redis.call('PUBLISH', KEYS[1], 'x')", "1", "other"),
    ("KEYS", "*"),
    ("FLUSHALL",),
    ("CONFIG", "GET", "*"),
    ("ACL", "LIST"),
    ("CLIENT", "KILL", "USER", "web"),
    ("SHUTDOWN", "NOSAVE"),
]


def test_the_publisher_may_publish_on_the_signal_channel_only(acl_redis):
    listener = acl_redis.as_user("web").pubsub()
    listener.subscribe(CHANNEL)
    wait_until(lambda: listener.get_message(timeout=0.1), 5, message="the subscription confirmed")
    publisher = acl_redis.as_user("publisher")

    assert publisher.publish(CHANNEL, '{"type":"BUY","price":60000}') == 1
    got_through = []
    for command in REFUSED:
        try:
            publisher.execute_command(*command)
            got_through.append(command)
        except redis.exceptions.NoPermissionError:
            pass

    message = wait_until(lambda: listener.get_message(timeout=0.1), 5, message="the published signal")
    assert message["data"] == '{"type":"BUY","price":60000}'
    assert got_through == [], f"{len(got_through)} of {len(REFUSED)} refused commands got through: {got_through}"
    assert acl_redis.admin.dbsize() == 0 and acl_redis.admin.ping()  # nothing written, nothing shut down
    assert sum(entry["count"] for entry in refusals(acl_redis, "publisher")) == len(REFUSED)
    listener.close()
    publisher.close()


@pytest.mark.parametrize(
    "user, command",
    [
        ("web", ("GET", "celery-task-meta-1")),
        ("web", ("LPUSH", "celery", "{}")),
        ("web", ("PUBLISH", "other", "x")),
        ("web", ("KEYS", "*")),
        ("web", ("FLUSHALL",)),
        ("web", ("CONFIG", "SET", "appendonly", "no")),
        ("worker", ("FLUSHALL",)),
        ("worker", ("FLUSHDB",)),
        ("worker", ("CONFIG", "GET", "*")),
        ("worker", ("ACL", "SETUSER", "worker", "+@all")),
        ("worker", ("MONITOR",)),
        ("worker", ("SHUTDOWN", "NOSAVE")),
    ],
)
def test_the_web_and_the_worker_are_refused_what_they_never_use(acl_redis, user, command):
    client = acl_redis.as_user(user)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)
    client.close()


def test_a_client_without_a_login_can_do_nothing(acl_redis):
    # No retries: redis-py retries an AuthenticationError (a ConnectionError) with a backoff of seconds.
    anonymous = redis.Redis(port=acl_redis.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    for command in (("PING",), ("PUBLISH", CHANNEL, "x"), ("GET", "qs:epoch")):
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.execute_command(*command)
    anonymous.close()


def test_a_web_process_and_a_worker_run_with_their_users(acl_redis, start_web, start_celery, connect):
    with Receiver() as receiver:
        notify_env = {"NOTIFY_URLS": receiver.url("/hook"), "NOTIFY_WEBHOOK_SECRET": SECRET}
        start_celery("worker", REDIS_URL=acl_redis.url_of("worker"), **notify_env)
        start_celery("beat", REDIS_URL=acl_redis.url_of("worker"), **notify_env)
        web = start_web(REDIS_URL=acl_redis.url_of("web"), SIGNALS_PUBLISH_TOKEN=TOKEN)
        client = connect(web.url)
        wait_until(lambda: acl_redis.admin.exists("qs:history"), 60, 0.1, "the beat's first notify-dispatch run")

        answer = requests.post(
            web.url + "/api/signals",
            json={"type": "BUY", "price": 60000, "symbol": "BTCUSDT"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        stored = answer.json()
        acl_redis.as_user("publisher").publish(CHANNEL, json.dumps({"type": "SELL", "price": 1, "symbol": "ETHUSDT"}))

        [hook] = wait_until(lambda: receiver.received("/hook"), 30, message="the webhook notified by the worker")
        assert json.loads(hook.body)["seq"] == stored["seq"]
        relayed = client.wait_signals(2)
        assert [(s["type"], s.get("seq")) for s in relayed] == [("BUY", stored["seq"]), ("SELL", None)]
        history = requests.get(web.url + "/api/signals", timeout=10).json()
        assert [s["seq"] for s in history["signals"]] == [stored["seq"]]
        assert requests.get(web.url + "/readyz", timeout=10).status_code == 200
        assert refusals(acl_redis, "web", "worker") == []
