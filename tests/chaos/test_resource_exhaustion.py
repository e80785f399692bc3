"""Scenario 11: strangers try to exhaust the web process's connections and files while signals flow.

Polling POSTs that announce a body and never send it, then hang up (each used to park a socket in CLOSE-WAIT
for ever), and slowloris connections that send half a request line and wait. The attacked stack runs with
SOCKET_TIMEOUT=3 so the half requests are cut within seconds. Legitimate clients must get every signal, the
web process must keep answering /healthz quickly, and its open files must come back to where they were.
"""

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from backend.web.server import raise_open_file_limit
from harness.polling import wait_until
from harness.ports import is_closed
from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.stack import ChaosStack

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]
SOCKET_TIMEOUT_S = 3
FD_SLACK = 5  # Redis pool connections come and go; a leak here is one descriptor per attacking request
MAX_HEALTHZ_S = 1.0


@pytest.fixture(scope="module")
def attacked_stack(tmp_path_factory):
    """One web process (short socket and connect timeouts), a worker, a beat; stopped after the module."""
    stack = ChaosStack(
        tmp_path_factory.mktemp("resource-exhaustion"),
        extra_env={"SOCKET_TIMEOUT": str(SOCKET_TIMEOUT_S), "CONNECT_TIMEOUT": "2"},
    )
    try:
        yield stack.start(webs=1, workers=1, beats=1)
    finally:
        stack.stop()


def open_fds(web) -> int:
    """Open file descriptors of the web process."""
    return psutil.Process(web.pid).num_fds()


class HealthProbe:
    """Times GET /healthz in a thread until stopped; the worst time is what a load balancer would have seen."""

    def __init__(self, url: str):
        """Start probing URL."""
        self.url, self.times, self.failures = url, [], []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Probe until stopped, 20 times a second at most."""
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                code = requests.get(self.url + "/healthz", timeout=5).status_code
                if code != 200:
                    self.failures.append(code)
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self.times.append(time.monotonic() - started)
            self._stopping.wait(0.05)

    def stop(self) -> float:
        """Stop probing; the worst time in seconds."""
        self._stopping.set()
        self._thread.join(10)
        return max(self.times, default=0.0)


def no_body_post(web) -> None:
    """An Engine.IO polling session, then a POST announcing ~100 MB that sends nothing and hangs up."""
    opening = requests.get(web.url + "/socket.io/?EIO=4&transport=polling", timeout=10).text
    sid = json.loads(opening[1:])["sid"]
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
        sock.sendall(
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: text/plain\r\nContent-Length: 99999999\r\n\r\n".encode()
        )


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_no_body_polling_posts(profile, attacked_stack, clients, auditors, chaos_rows):
    stack, count = attacked_stack, 2000 if profile.full else 200
    web = stack.webs[0]
    pool = clients([web.url], profile.clients)
    scenario = Scenario(
        f"11a. {count} no-body polling POSTs ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    baseline = open_fds(web)
    scenario.produce()
    scenario.wait_produced(4)
    probe = HealthProbe(web.url)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as executor:
        list(executor.map(lambda _: no_body_post(web), range(count)))
    attack_s = time.monotonic() - started
    peak = open_fds(web)
    wait_until(
        lambda: open_fds(web) <= baseline + FD_SLACK,
        60,
        0.2,
        f"open files back to {baseline} (+{FD_SLACK}), now {open_fds(web)}",
    )
    settled_s = time.monotonic() - started
    worst = probe.stop()
    scenario.wait_produced(4)
    scenario.notes.append(
        f"sent in {attack_s:.1f} s; open files {baseline} -> {peak} -> {open_fds(web)} "
        f"after {settled_s:.1f} s; /healthz worst {worst * 1000:.0f} ms"
    )
    scenario.finish()
    assert not probe.failures, f"/healthz failed during the attack: {probe.failures[:5]}"
    assert worst < MAX_HEALTHZ_S, f"/healthz took {worst:.2f} s during the attack"
    assert set(stack.ready_codes()) == {200}


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_slowloris_connections(profile, attacked_stack, clients, auditors, chaos_rows):
    stack, count = attacked_stack, 2000 if profile.full else 200
    raise_open_file_limit()  # this process holds every attacking socket
    web = stack.webs[0]
    pool = clients([web.url], profile.clients)
    scenario = Scenario(
        f"11b. {count} slowloris connections ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    baseline = open_fds(web)
    scenario.produce()
    scenario.wait_produced(4)
    probe = HealthProbe(web.url)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as executor:
        sockets = list(
            executor.map(lambda _: socket.create_connection(("127.0.0.1", web.port), timeout=10), range(count))
        )
    try:
        for sock in sockets:
            sock.sendall(b"GET /healthz HT")
        opened_s = time.monotonic() - started
        peak = open_fds(web)
        wait_until(
            lambda: all(is_closed(sock) for sock in sockets),
            SOCKET_TIMEOUT_S + opened_s + 15,
            0.2,
            "every half request closed by the server",
        )
        closed_s = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    wait_until(
        lambda: open_fds(web) <= baseline + FD_SLACK,
        30,
        0.2,
        f"open files back to {baseline} (+{FD_SLACK}), now {open_fds(web)}",
    )
    worst = probe.stop()
    scenario.wait_produced(4)
    scenario.notes.append(
        f"opened in {opened_s:.1f} s, all closed by the server after {closed_s:.1f} s; "
        f"open files {baseline} -> {peak} -> {open_fds(web)}; /healthz worst {worst * 1000:.0f} ms"
    )
    scenario.finish()
    assert not probe.failures, f"/healthz failed during the attack: {probe.failures[:5]}"
    assert worst < MAX_HEALTHZ_S, f"/healthz took {worst:.2f} s during the attack"
    assert set(stack.ready_codes()) == {200}
