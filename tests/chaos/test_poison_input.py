"""Scenario 10: input built to kill or flood the relay, while signals flow to real clients.

A poison-message flood on the channel (nesting that breaks recursive encoders, lone surrogates, seq values
Redis rejects as stream ids), reserved event names sent by connected clients, and junk frames measured in
bytes of log each. Every legitimate client still gets every signal, and every web stays ready.
"""

import json

import pytest
import requests

from harness.polling import wait_until
from tests.chaos.harness import FULL, SHORT, Scenario
from tests.chaos.hostile import metric, raw_socketio

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]


def poison(epoch: str, n: int) -> list[bytes]:
    """Messages that each once took a relay down or off the channel."""
    return [
        b'{"type":"BUY","price":5,"indicators":' + b"[" * 600 + b"]" * 600 + b"}",
        b'{"type":"BUY","price":5,"i":' + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}",
        b'{"type":"SELL","price":5,"reason":"\\ud800\\udfff\\udc00"}',
        json.dumps({"type": "BUY", "price": 1, "seq": 2**64 + n, "epoch": epoch}).encode(),
        json.dumps({"type": "BUY", "price": 1, "seq": 2**63, "epoch": epoch}).encode(),
        json.dumps({"type": "BUY", "price": 1, "seq": 3, "epoch": "x" * 5000}).encode(),
    ]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_poison_flood_with_clients_connected(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    count = 100 if profile.full else 20
    pool = clients([web.url for web in stack.webs], count, kind="node" if profile.full else "python")
    scenario = Scenario(
        f"10a. poison flood, {count} clients ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    dropped_before = [metric(web.url, "qs_malformed_dropped_total") for web in stack.webs]
    publisher = stack.client(decode_responses=False)
    epoch = stack.client().get("qs:epoch")
    scenario.produce()
    scenario.wait_produced(4)

    rounds = 200 if profile.full else 20
    for n in range(rounds):
        for message in poison(epoch, n):
            publisher.publish("quantum_signals", message)
    scenario.wait_produced(8)

    dropped = [metric(web.url, "qs_malformed_dropped_total") - b for web, b in zip(stack.webs, dropped_before)]
    restarts = [metric(web.url, "qs_relay_restarts_total") for web in stack.webs]
    subscribers = dict(stack.client().pubsub_numsub("quantum_signals"))["quantum_signals"]
    scenario.notes.append(f"{rounds * 6} poison messages; dropped per web {dropped}; relay restarts {restarts}")
    scenario.finish()
    assert all(d >= rounds * 6 for d in dropped), dropped
    assert subscribers >= len(stack.webs), f"a relay left the channel: {subscribers} subscribers"
    assert set(stack.ready_codes()) == {200}


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_reserved_event_frames(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"10b. reserved-event frames ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    web = stack.webs[0]
    refused_before = sum(
        metric(web.url, f'qs_client_events_refused_total{{reason="reserved:{name}"}}')
        for name in ("connect", "disconnect")
    )
    scenario.produce()
    scenario.wait_produced(4)

    frames = 1000 if profile.full else 100
    peers = [raw_socketio(web.url) for _ in range(10)]  # live only: they read nothing, a replay would stall them
    try:
        wait_until(
            lambda: sum(metric(w.url, "qs_clients_connected") for w in stack.webs) == len(pool.clients) + 10,
            20,
            0.1,
            "the raw peers connected",
        )
        for n in range(frames):
            peers[n % 10].send('42["disconnect"]' if n % 10 == 9 else '42["connect",{"since":0}]')
        wait_until(
            lambda: (
                sum(
                    metric(web.url, f'qs_client_events_refused_total{{reason="reserved:{name}"}}')
                    for name in ("connect", "disconnect")
                )
                - refused_before
                >= frames
            ),
            20,
            0.1,
            f"{frames} reserved events refused",
        )
        connected_during = sum(metric(w.url, "qs_clients_connected") for w in stack.webs)
    finally:
        for ws in peers:
            ws.close()
    scenario.wait_produced(4)
    wait_until(
        lambda: sum(metric(w.url, "qs_clients_connected") for w in stack.webs) == len(pool.clients),
        20,
        0.2,
        "the gauge back to the pool's size",
    )
    scenario.notes.append(
        f"{frames} forged connect/disconnect frames refused; gauge during: {connected_during:.0f}"
        f" for {len(pool.clients) + 10} clients"
    )
    scenario.finish()
    assert connected_during == len(pool.clients) + 10
    assert set(stack.ready_codes()) == {200}


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_log_volume_per_hostile_frame(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"10c. log volume of junk frames ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    web = stack.webs[0]
    scenario.produce()
    scenario.wait_produced(2)
    text_before = len(web.log())
    size_before = len(web.log().encode())

    frames = 2000 if profile.full else 200
    junk = [
        "4zzz",
        '42["subscribe",' + "[" * 2000 + "]" * 2000 + "]",
        "49[]",
        '42["nonsense"',
        "4" + "2" * 100,
        '42["connect"]',
        "41",
        '42["subscribe",{"symbols":5}]',
    ]
    peers = [raw_socketio(web.url) for _ in range(20)]
    try:
        for n in range(frames):
            peers[n % 20].send(junk[n % len(junk)])
    finally:
        for ws in peers:
            ws.close()
    healthz_s = requests.get(web.url + "/healthz", timeout=10).elapsed.total_seconds()
    scenario.wait_produced(2)
    logged = len(web.log().encode()) - size_before
    per_frame = logged / frames
    scenario.notes.append(
        f"{frames} junk frames: {logged} bytes of log ({per_frame:.1f} B/frame); /healthz {healthz_s * 1000:.0f} ms"
    )
    scenario.finish()
    assert "Traceback" not in web.log()[text_before:]
    assert per_frame < 20, f"{per_frame:.1f} bytes of log per junk frame"
    assert set(stack.ready_codes()) == {200}
