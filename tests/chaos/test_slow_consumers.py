"""Scenario 7: clients that stop reading (raw websockets, some asking for a full replay) must not stall the
others, and must not grow the web process's memory without bound.

7b: 40 clients that stop reading but keep the server's ping timeout at bay (a pong every few seconds) while
signals flow: only the backlog bound (SLOW_CLIENT_MAX_PACKETS) ends them. Each is cut and counted, memory stays
bounded, the other clients lose nothing, and a cut client that reconnects with `since` gets everything it
missed. The two webs run the broadcast fast path on and off.
"""

import json
import threading
import time

import numpy as np
import pytest
import requests

from harness.polling import wait_until
from tests.chaos.clients import ReconnectingClient
from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.hostile import SteadyPublisher, fill_history, metric, raw_socketio
from tests.chaos.stack import rss_mb

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]
HISTORY, HISTORY_REASON_BYTES = 8000, 4000  # 32 MB of history: a copy per non-reader would be costly
# A stalled reader may cost a bounded amount (a few hundred queued packets), not a copy of the history.
MAX_GROWTH_SHARE = 0.3
MAX_LAG_S = 2.0


def relay_seq(web) -> int:
    """The last seq the web's relay has relayed."""
    return requests.get(web.url + "/readyz", timeout=5).json()["seq"]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_stalled_clients_do_not_stall_others_or_grow_memory(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    per_web = 30 if profile.full else 10  # one in five live-only, the others asking for the whole history (since=0)
    fill_history(stack.client(), HISTORY, HISTORY_REASON_BYTES)
    wait_until(
        lambda: all(relay_seq(web) == int(stack.client().get("qs:seq")) for web in stack.webs),
        30,
        0.1,
        "the relays through the filled history",
    )  # the clients below start after it
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"7. {per_web * len(stack.webs)} stalled readers ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    rss_before = {web.name: rss_mb(web.pid) for web in stack.webs}
    stalled = []
    try:
        for web in stack.webs:
            for n in range(per_web):
                stalled.append(raw_socketio(web.url, {"since": 0} if n % 5 else None, rcvbuf=4096))
        scenario.produce()
        stream = SteadyPublisher(stack.client(), rate=20, prefix=f"slow-{time.time_ns()}", reason_bytes=2000)
        samples = {web.name: [] for web in stack.webs}
        started = time.monotonic()
        duration = 75.0 if profile.full else 4.0
        while time.monotonic() - started < duration:  # the stream runs for `duration`, sampled 4 times a second
            for web in stack.webs:
                samples[web.name].append((time.monotonic() - started, rss_mb(web.pid)))
            time.sleep(0.25)
        if profile.full:  # the server's ping timeout (45 s) has cut every stalled reader by now
            wait_until(
                lambda: sum(metric(w.url, "qs_clients_connected") for w in stack.webs) == len(pool.clients),
                30,
                0.5,
                "the stalled readers disconnected by the server",
            )
        stream.stop()
    finally:
        for ws in stalled:
            ws.sock.close() if ws.sock else None

    growth = {name: max(rss for _, rss in points) - rss_before[name] for name, points in samples.items()}
    lags = pool.lags(scenario.auditor.since(scenario.mark))
    slopes = {}
    for name, points in samples.items():
        tail = [(t, rss) for t, rss in points if t > duration - 15]
        slopes[name] = float(np.polyfit(*zip(*tail), 1)[0]) if len(tail) > 2 else 0.0
    p99 = f"{np.percentile(lags, 99):.2f} s" if lags else "n/a"
    scenario.notes.append(
        f"RSS growth {max(growth.values()):.0f} MiB, last-15s slope {max(slopes.values()):.2f} "
        f"MiB/s; others' lag p99 {p99}"
    )
    scenario.finish()
    assert lags and max(lags) < MAX_LAG_S, f"stalled readers delayed the others: worst lag {max(lags):.2f} s"
    replaying = per_web - per_web // 5
    limit = MAX_GROWTH_SHARE * replaying * HISTORY * HISTORY_REASON_BYTES / 2**20
    assert max(growth.values()) < limit, f"web memory grew by {growth} MiB (limit {limit:.0f})"
    if profile.full:
        assert max(slopes.values()) < 0.2, f"memory still growing after the stalled readers were cut: {slopes}"


STALLED_PER_WEB = 20  # 40 over the stack's two webs
CUT_BOUND = 250  # SLOW_CLIENT_MAX_PACKETS of the 7b stack
PONG_EVERY_S = 5.0  # well inside the server's ping timeout (20 s): only the bound cuts these clients
MAX_CUT_GROWTH_MB = 64  # 20 cut clients hold at most CUT_BOUND shared packets and a transport buffer each


class Ponger:
    """Sends a PONG on each raw websocket every PONG_EVERY_S, reading nothing: a client alive but not reading."""

    def __init__(self, sockets):
        """Start pinging SOCKETS from a thread."""
        self.sockets = sockets
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(PONG_EVERY_S):
            for ws in self.sockets:
                try:
                    ws.send("3")
                except Exception:  # noqa: BLE001 - cut by the server: nothing more to keep alive
                    continue

    def stop(self) -> None:
        """Stop pinging."""
        self._stopping.set()
        self._thread.join(5)


def read_until_cut(ws) -> tuple[dict | None, list[int]]:
    """Everything a raw client reads until the connection ends: (its welcome, the seqs of whole signals)."""
    welcome, seqs = None, []
    while True:
        try:
            message = ws.recv()
        except Exception:  # noqa: BLE001 - EOF, a reset, or the half frame an abort left: the end either way
            return welcome, seqs
        if not message:
            return welcome, seqs
        if message.startswith("42["):
            event, data = json.loads(message[2:])
            if event == "welcome":
                welcome = data
            elif event == "new_signal":
                seqs.append(data["seq"])


def cut_count(web) -> float:
    """Clients the web cut for falling behind, either bound."""
    return sum(metric(web.url, f'qs_slow_clients_cut_total{{reason="{r}"}}') for r in ("packets", "bytes"))


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_stalled_readers_answering_pings_are_cut_and_recover_by_since(
    profile, stack_factory, clients, auditors, chaos_rows
):
    stack = stack_factory(webs=2, workers=1, beats=1, extra_env={"SLOW_CLIENT_MAX_PACKETS": str(CUT_BOUND)})
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"7b. {STALLED_PER_WEB * len(stack.webs)} stalled readers answering pings ({profile.name})",
        stack,
        pool,
        chaos_rows,
        auditors(stack.redis_url),
    )
    rss_before = {web.name: rss_mb(web.pid) for web in stack.webs}
    stalled = {
        web.name: [raw_socketio(web.url, rcvbuf=4096, timeout=10) for _ in range(STALLED_PER_WEB)] for web in stack.webs
    }
    ponger = Ponger([ws for sockets in stalled.values() for ws in sockets])
    recovering = []
    try:
        scenario.produce()
        # 30 KB signals at 40/s: the kernel takes up to 4 MB per stalled connection before its queue grows.
        stream = SteadyPublisher(stack.client(), rate=40, prefix=f"cut-{time.time_ns()}", reason_bytes=30000)
        samples = {web.name: [] for web in stack.webs}

        def all_cut() -> bool:
            for web in stack.webs:
                samples[web.name].append(rss_mb(web.pid))
            return all(cut_count(web) >= STALLED_PER_WEB for web in stack.webs)

        wait_until(all_cut, 90, 0.25, "every stalled reader cut by the backlog bound")
        cut_at = time.monotonic()
        # One cut client per web comes back with its cursor while the stream goes on.
        for web in stack.webs:
            welcome, seqs = read_until_cut(stalled[web.name][0])
            assert welcome is not None, f"{web.name}: the stalled client never got its welcome"
            # A client that reconnects by itself from its cursor: on a loaded machine it may fall behind (and be
            # cut) again while it catches up at 1.2 MB/s, and must still miss nothing.
            client = ReconnectingClient([web.url], f"back-{web.name}")
            client.epoch, client.seq = welcome["epoch"], seqs[-1] if seqs else welcome["seq"]
            recovering.append((web.name, welcome["seq"], seqs, client.start()))
        hold_s = 60.0 if profile.full else 3.0  # memory after the cut: flat while signals keep flowing
        while time.monotonic() - cut_at < hold_s:
            for web in stack.webs:
                samples[web.name].append(rss_mb(web.pid))
            time.sleep(0.25)
        stream.stop()
        growth = {name: max(points) - rss_before[name] for name, points in samples.items()}
        scenario.notes.append(f"RSS growth {max(growth.values()):.0f} MiB")
        scenario.finish()
    finally:
        ponger.stop()
        for sockets in stalled.values():
            for ws in sockets:
                ws.sock.close() if ws.sock else None

    last = int(stack.client().get("qs:seq"))
    try:
        for name, welcome_seq, seqs, client in recovering:
            wait_until(lambda: client.seq >= last, 60, message=f"{name}: the cut client back to the last signal")
            got = seqs + [seq for _epoch, seq in client.snapshot()[1]]
            assert got == list(range(welcome_seq + 1, last + 1)), f"{name}: a cut client missed or repeated signals"
    finally:
        for *_, client in recovering:
            client.stop()
    for web in stack.webs:
        lines = [line for line in web.log().splitlines() if "fell behind" in line]
        # One line per cut client at most (a crowd of them is summarised by the log filter); the recovering
        # client may have been cut again while catching up.
        assert 1 <= len(lines) <= cut_count(web), f"{web.name}: {len(lines)} lines about slow clients"
        assert cut_count(web) >= STALLED_PER_WEB, f"{web.name}: cut {cut_count(web)}"
    assert max(growth.values()) < MAX_CUT_GROWTH_MB, f"web memory grew by {growth} MiB"
    lags = pool.lags(scenario.auditor.since(scenario.mark))
    assert lags and max(lags) < MAX_LAG_S, f"stalled readers delayed the others: worst lag {max(lags):.2f} s"
