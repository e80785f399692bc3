"""`make run`'s stack: honcho runs the Procfile, with an embedded Redis when none answers."""

import os
import re
import sys

import requests

from harness.clients import RecordingClient
from harness.polling import wait_until
from harness.ports import free_port
from harness.processes import ServerProcess


def test_make_run_stack_with_embedded_redis_serves_simulated_signals(base_env, tmp_path):
    closed_port = free_port()
    web_port, flower_port = free_port(), free_port()
    # A password in REDIS_URL must never reach the log; an unauthenticated Flower must never be started.
    env = {
        **base_env,
        "REDIS_URL": f"redis://:s3cret-pw@127.0.0.1:{closed_port}/0",
        "PORT": str(web_port),
        "FLOWER_PORT": str(flower_port),
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    for name in ("MARKET_SOURCE", "TIMEFRAME", "SCAN_INTERVAL", "SYMBOLS", "STRATEGIES", "FLOWER_BASIC_AUTH"):
        env.pop(name, None)
    stack = ServerProcess([sys.executable, "-m", "backend.stack"], env, "stack", tmp_path).start()
    client = None
    try:
        line = wait_until(
            lambda: re.search(r"embedded redis-server at redis://127.0.0.1:(\d+)/0 \(pid (\d+)\)", stack.log()),
            30,
            message="the embedded Redis log line",
        )
        redis_port, redis_pid = int(line.group(1)), int(line.group(2))
        assert redis_port != closed_port
        credentials = wait_until(
            lambda: re.search(r"flower: \S+  user (\S+), password (\S+) ", stack.log()),
            30,
            message="the Flower credentials log line",
        )
        auth = (credentials.group(1), credentials.group(2))
        wait_until(lambda: _status(f"http://127.0.0.1:{web_port}/readyz") == 200, 60, 0.2, message="web ready")
        client = RecordingClient(f"http://127.0.0.1:{web_port}")
        signal = client.wait_signals(1, timeout=60)[0]
        wait_until(
            lambda: _scans_seen_by_flower(f"http://127.0.0.1:{flower_port}", auth),
            60,
            0.2,
            message="Flower's API listing the scans",
        )
        anonymous = requests.get(f"http://127.0.0.1:{flower_port}/api/tasks", timeout=5)
        wrong = requests.get(f"http://127.0.0.1:{flower_port}/api/tasks", auth=(auth[0], "guess"), timeout=5)
        ui = [requests.get(f"http://127.0.0.1:{flower_port}/", auth=a, timeout=5).status_code for a in (None, auth)]

        assert signal["source"] == "simulated" and signal["seq"] >= 1
        assert anonymous.status_code == 401 and wrong.status_code == 401 and ui == [401, 200]
        assert "Access-Control-Allow-Origin" not in anonymous.headers
        log = stack.log()
        assert "s3cret-pw" not in log and f"redis://:***@127.0.0.1:{closed_port}/0" in log
        assert "ignoring FLOWER_UNAUTHENTICATED_API" in log
        assert log.count(auth[1]) == 1, "the Flower password is printed once"
    finally:
        if client:
            client.close()
        stack.stop()
    assert not _alive(redis_pid), "the embedded redis-server outlived the stack"
    assert _status(f"http://127.0.0.1:{web_port}/healthz") is None


def _alive(pid: int) -> bool:
    """True while PID runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return open(f"/proc/{pid}/stat").read().split()[2] != "Z"


def _scans_seen_by_flower(base: str, auth: tuple[str, str]) -> bool:
    """True once Flower's API (with AUTH) lists a market scan."""
    try:
        tasks = requests.get(base + "/api/tasks", auth=auth, timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    return any(task.get("name") == "tasks.scan.scan_market" for task in tasks.values())


def _status(url: str):
    """URL's HTTP status, or None when nothing answers."""
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None
