"""Scenario 6: malformed and hostile input on every boundary, while signals flow to real clients.

The channel (bad JSON, huge, binary, deep nesting, forged seq/epoch), Socket.IO (bad auth, unknown events,
junk and oversized packets, connect floods; bounded, loopback only), HTTP query parameters, the
environment (a bad value makes the process exit non-zero with a message naming the variable), and the stats
(signals POSTed with hindsight, floods of strategy names).
"""

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import socketio
import websocket

from harness.polling import wait_until
from harness.processes import ROOT, procfile_command
from tests.chaos.exchange import STRATEGY
from tests.chaos.harness import FULL, SHORT, Row, Scenario
from tests.chaos.hostile import metric, raw_socketio

PROFILES = [SHORT, pytest.param(FULL, marks=[pytest.mark.chaos, pytest.mark.timeout(900)])]

MALFORMED = [
    b"not json",
    b"[1,2,3]",
    b'"BUY"',
    b"{}",
    b"",
    b" " * 70_000,
    b'{"type":"BUY"}',
    b'{"type":"BUY","price":-5}',
    b'{"type":"BUY","price":0}',
    b'{"type":"BUY","price":"60000"}',
    b'{"type":"HOLD","price":1}',
    b'{"type":"BUY","price":NaN}',
    b'{"type":"BUY","price":Infinity}',
    b'{"type":"BUY","price":true}',
    b"\xff\xfe{bad utf8}",
    bytes(range(256)),
    b'{"type":"BUY","price":1,"x":"' + b"a" * 1_000_000 + b'"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"type":"BUY","price":1,"seq":-3,"epoch":"x"}',
    b'{"type":"BUY","price":1,"symbol":["BTCUSDT"]}',
]
OUTSIDE = {"type": "BUY", "price": 60000, "symbol": "BTCUSDT"}  # a valid outside publisher's signal


def forged(epoch: str, seq: int) -> list[dict]:
    """Valid-looking signals carrying a seq/epoch the project's publisher did not assign (or not to them)."""
    fake = {"type": "SELL", "price": 1, "symbol": "BTCUSDT"}
    return [
        {**fake, "id": "forged-next", "seq": seq + 1, "epoch": epoch},
        {**fake, "id": "forged-ahead", "seq": seq + 1_000_000, "epoch": epoch},
        {**fake, "id": "forged-epoch", "seq": 7, "epoch": "forged"},
        {**fake, "id": "forged-no-epoch", "seq": 3},
    ]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_hostile_channel_messages(profile, stack_factory, clients, auditors, chaos_rows):
    stack = stack_factory()  # its own: a forged message that got through would poison the shared relays
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"6a. hostile channel messages ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    dropped_before = [metric(web.url, "qs_malformed_dropped_total") for web in stack.webs]
    redis_client = stack.client(decode_responses=False)
    scenario.produce()
    scenario.wait_produced(4)

    rounds = 5 if profile.full else 1
    for _ in range(rounds):
        for payload in MALFORMED:
            redis_client.publish("quantum_signals", payload)
        redis_client.publish("quantum_signals", json.dumps(OUTSIDE))
        scenario.wait_produced(4)
    epoch, seq = stack.client().get("qs:epoch"), int(stack.client().get("qs:seq"))
    for message in forged(epoch, seq):
        redis_client.publish("quantum_signals", json.dumps(message))
    scenario.wait_produced(8)

    dropped = [
        metric(web.url, "qs_malformed_dropped_total") - before for web, before in zip(stack.webs, dropped_before)
    ]
    outside = [len(client.other) for client in pool.clients]
    forged_seen = sum(1 for client in pool.clients for ident in client.ids.values() if str(ident).startswith("forged"))
    forged_seen += sum(
        1 for client in pool.clients for item in client.other if str(item.get("id")).startswith("forged")
    )
    scenario.notes.append(
        f"{len(MALFORMED) * rounds} malformed dropped per web: {dropped}; forged relayed to clients: {forged_seen}"
    )
    scenario.finish()
    assert all(d >= len(MALFORMED) * rounds for d in dropped), dropped
    assert all(n >= rounds for n in outside), f"outside publishers' signals missing: {outside}"
    assert set(stack.ready_codes()) == {200}


# (connect auth, accepted?): a bad cursor or filter is refused, anything else harmless is let in.
BAD_AUTH = [
    ({"since": "abc"}, False),
    ({"since": -1}, False),
    ({"since": 1.5}, True),
    ({"since": True}, False),
    ({"since": [1]}, False),
    ({"since": {"$gt": 0}}, False),
    ({"since": "9" * 5000}, False),
    ({"since": 10**40}, True),
    ({"symbols": 5}, False),
    ({"symbols": ["BTC USD"]}, False),
    ({"symbols": ["$$$"]}, False),
    ({"symbols": ["BTC-USD", "btc/usdt"]}, True),
    ({"symbols": ["A" * 40]}, False),
    ({"symbols": [f"X{i}" for i in range(300)]}, False),
    ({"symbols": [[["deep"]]]}, False),
    ({"epoch": {"x": 1}}, True),
    ({"epoch": ["a"]}, True),
    ({"token": "wrong"}, True),
    ("just a string", True),
    ([1, 2, 3], True),
    (12345, True),
]
BAD_QUERY = [
    ("since=abc", False),
    ("since=-5", False),
    ("symbols=!!!", False),
    ("since=1e9", False),
    ("since=1_0", False),
    ("since=%D9%A1%D9%A2", False),
    ("symbols=" + ",".join(f"S{i}" for i in range(300)), False),
    ("epoch=%00", True),
]
JUNK_FRAMES = [
    "4zzz",
    "42",
    '42["subscribe"',
    "49[]",
    "4" + "2" * 100,
    '42["nonsense",{"a":1}]',
    "6",
    "9",
    '42["subscribe",null]',
    '42["subscribe",5]',
    '42["subscribe",{"symbols":5}]',
    '42["subscribe",{"symbols":["!!"]}]',
    '42["subscribe",' + "[" * 2000 + "]" * 2000 + "]",
    '42["new_signal",{"type":"BUY","price":1}]',
    '42["welcome",{}]',
    "41",
    "40",
]


def product_tracebacks(log: str) -> list[str]:
    """Tracebacks in LOG that pass through the product's code (python-socketio logs junk packets it rejects)."""
    blocks, current = [], None
    for line in log.splitlines():
        if line.startswith("Traceback"):
            current = [line]
        elif current is not None:
            current.append(line)
            if not line.startswith(" "):  # the exception line ends the block
                blocks.append("\n".join(current))
                current = None
    return [b for b in blocks if "/backend/" in b or "asgi.py" in b or "/tasks/" in b]


def _try_connect(url: str, auth=None, query: str = "") -> str:
    """Connect one client; return 'ok' or the refusal."""
    client = socketio.Client(reconnection=False)
    try:
        client.connect(url + ("?" + query if query else ""), auth=auth, transports=["websocket"], wait_timeout=5)
        return "ok"
    except socketio.exceptions.ConnectionError as exc:
        return f"refused: {exc}"
    finally:
        client.disconnect()


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_hostile_socketio_peers(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"6b. hostile Socket.IO peers ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    log_sizes = [len(web.log()) for web in stack.webs]
    scenario.produce()
    scenario.wait_produced(4)
    web = stack.webs[0]

    wrong_answers = [
        f"auth {json.dumps(auth)[:40]}: {answer}"
        for auth, accepted in BAD_AUTH
        if (answer := _try_connect(web.url, auth)).startswith("ok") != accepted
    ]
    wrong_answers += [
        f"query {query[:40]}: {answer}"
        for query, accepted in BAD_QUERY
        if (answer := _try_connect(web.url, query=query)).startswith("ok") != accepted
    ]
    closed_by_server = 0
    for frame in JUNK_FRAMES + [b"\x00\x01\x02", "4" + "x" * 1_000_000]:
        ws = raw_socketio(web.url)
        try:
            ws.send_binary(frame) if isinstance(frame, bytes) else ws.send(frame)
            ws.settimeout(0.2)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and ws.recv():  # read what the server answers, or its hang-up
                pass
        except (websocket.WebSocketTimeoutException, OSError):
            pass
        except websocket.WebSocketException:  # the server closed the connection: fine for junk
            closed_by_server += 1
        finally:
            ws.close()

    flood = 600 if profile.full else 150
    idle = [socket.create_connection(("127.0.0.1", w.port)) for w in stack.webs for _ in range(flood // 6)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as executor:
        opened = list(executor.map(lambda n: raw_socketio(stack.webs[n % 2].url), range(flood)))
    ready_during = [requests.get(w.url + "/readyz", timeout=5).elapsed.total_seconds() for w in stack.webs]
    for ws in opened:
        ws.close()
    polling = [
        requests.get(w.url + "/socket.io/?EIO=4&transport=polling", timeout=5).status_code
        for w in stack.webs
        for _ in range(flood // 6)
    ]
    flood_s = time.monotonic() - started
    for sock in idle:
        sock.close()
    scenario.wait_produced(4)
    wait_until(
        lambda: sum(metric(w.url, "qs_clients_connected") for w in stack.webs) == len(pool.clients),
        20,
        0.2,
        "the flood's connections all gone",
    )

    errors = [block for web, size in zip(stack.webs, log_sizes) for block in product_tracebacks(web.log()[size:])]
    scenario.notes.append(
        f"{len(BAD_AUTH) + len(BAD_QUERY)} odd connects ({len(wrong_answers)} answered wrongly), "
        f"{len(JUNK_FRAMES) + 2} junk frames ({closed_by_server} hung up), "
        f"flood of {flood} in {flood_s:.1f} s"
    )
    scenario.finish()
    assert all(code == 200 for code in polling)
    assert max(ready_during) < 1.0, f"/readyz slow during the flood: {ready_during}"
    assert not errors, f"the product's code raised on hostile input: {errors[:3]}"
    assert set(stack.ready_codes()) == {200}
    assert not wrong_answers, wrong_answers


HTTP_CASES = [
    ("/api/signals?since=-1", 400),
    ("/api/signals?since=abc", 400),
    ("/api/signals?since=1e3", 400),
    ("/api/signals?since=1.5", 400),
    ("/api/signals?since=%F0%9F%92%A9", 400),
    ("/api/signals?since=99999999999999999999999999", 400),
    ("/api/signals?limit=0", 400),
    ("/api/signals?limit=1001", 400),
    ("/api/signals?limit=-1", 400),
    ("/api/signals?limit=abc", 400),
    ("/api/signals?since=1_0", 400),
    ("/api/signals?since=%D9%A1%D9%A2", 400),
    ("/api/signals?limit=%EF%BC%95", 400),
    ("/api/signals?since=%2B5", 400),
    ("/api/signals?symbol=%C5%BFOL", 400),
    ("/api/signals?limit=1000", 200),
    ("/api/signals?symbol=btc-usdt", 200),
    ("/api/signals?symbol=btc/usdt", 200),
    ("/api/signals?symbol=btc%20usdt", 400),
    ("/api/signals?symbol=%3Cscript%3Ealert(1)%3C/script%3E", 400),
    ("/api/signals?symbol=" + "A" * 33, 400),
    ("/api/signals?symbol=%00", 400),
    ("/api/signals?symbol=BTCUSDT&symbol=ETHUSDT", 200),
    ("/api/signals?since=&limit=&symbol=", 200),
    ("/api/signals?" + "x=" + "a" * 100_000, 414),
    ("/api/signals/../../etc/passwd", 404),
    ("/static/../../asgi.py", 404),
    ("/%00", 404),
    ("/readyz?verbose=1", 200),
    ("/metrics?x=1", 200),
    ("/socket.io/?EIO=9", 400),
    ("/socket.io/?EIO=4&transport=foo", 400),
    ("/socket.io/?EIO=4&transport=polling&sid=nope", 400),
]


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_hostile_http_queries(profile, shared_stack, clients, auditors, chaos_rows):
    stack = shared_stack
    pool = clients([web.url for web in stack.webs], profile.clients)
    scenario = Scenario(
        f"6c. hostile HTTP queries ({profile.name})", stack, pool, chaos_rows, auditors(stack.redis_url)
    )
    scenario.produce()
    scenario.wait_produced(4)

    wrong = []
    throttled = 0
    for _ in range(20 if profile.full else 1):
        for web in stack.webs:
            for path, expected in HTTP_CASES:
                answer = requests.get(web.url + path, timeout=10)
                # The full profile asks faster than HTTP_RATE_LIMIT allows one address: a 429 then is right, if it
                # is well formed; a polite client waits what Retry-After says and asks again (bounded).
                for _retry in range(5):
                    if answer.status_code != 429:
                        break
                    throttled += 1
                    retry_after = answer.headers.get("Retry-After", "")
                    if not retry_after.isdigit() or "error" not in answer.json():
                        wrong.append(f"{path[:60]} -> 429 without Retry-After or a JSON error: {answer.headers}")
                        break
                    time.sleep(int(retry_after))  # the server's own instruction, not a wait for an event
                    answer = requests.get(web.url + path, timeout=10)
                if answer.status_code != expected:
                    wrong.append(f"{path[:60]} -> {answer.status_code} {answer.text[:80]!r} (expected {expected})")
                elif expected == 400 and path.startswith("/api/") and "error" not in answer.json():
                    wrong.append(f"{path[:60]} -> 400 without a JSON error")
            for garbage in (
                b"GARBAGE\r\n\r\n",
                b"GET / HTTP/9.9\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00",
                b"GET /api/signals HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 2000 + b"\r\n",
            ):
                with socket.create_connection(("127.0.0.1", web.port), timeout=2) as sock:
                    sock.sendall(garbage)
                    try:
                        status = sock.recv(64)
                    except (TimeoutError, OSError):  # no answer to junk is fine; a 5xx is not
                        status = b""
                if status.startswith(b"HTTP/1.1 5"):
                    wrong.append(f"raw {garbage[:20]!r} -> {status!r}")
    scenario.wait_produced(4)
    scenario.notes.append(
        f"{len(HTTP_CASES) + 4} hostile requests per web, {len(wrong)} answered wrongly, {throttled} throttled (429)"
    )
    scenario.finish()
    assert set(stack.ready_codes()) == {200}
    assert not wrong, wrong


BAD_ENV = [
    ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ("REDIS_URL", "rediss://127.0.0.1:1/0?ssl_cert_reqs=bogus"),
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("SCAN_INTERVAL", "0"),
    ("SCAN_INTERVAL", "soon"),
    ("TIMEFRAME", "7m"),
    ("SYMBOLS", ","),
    ("SYMBOLS", "BTC USDT"),
    ("MARKET_SOURCE", "ftx"),
    ("MARKET_SOURCE", "csv:"),
    ("BINANCE_API_URL", "ftp://example.com"),
    ("STRATEGIES", "bogus"),
    ("STRATEGIES", "sma_cross:fast=30,slow=5"),
    ("HISTORY_MAXLEN", "0"),
    ("MAX_SIGNAL_BYTES", "1"),
]


def _run_with(kind: str, name: str, value: str, log_dir) -> tuple[int | None, str]:
    """Start a KIND process with NAME=VALUE; (exit code or None if it kept running, its output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALS_", "CORS_", "REDIS_", "CHAOS_"))}
    env.update(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONUNBUFFERED": "1", "MARKET_SOURCE": "simulated", name: value}
    )
    args = procfile_command(kind, env)
    if kind == "beat":
        args += ["--pidfile", str(log_dir / f"beat-{name}.pid"), "--schedule", str(log_dir / f"beat-{name}.db")]
    try:
        # A bad value exits at start-up within seconds; the deadline is only for one that keeps running, and is long
        # because on a loaded machine (a parallel suite) importing the app alone can take tens of seconds.
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:  # run() kills it
        return None, (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_bad_environment_exits_naming_the_variable(profile, tmp_path, chaos_rows):
    def kinds(name):  # the web does not run strategies, so it need not judge them
        return ("worker", "beat") if name == "STRATEGIES" else ("web", "worker", "beat")

    cases = (
        [(kind, name, value) for name, value in BAD_ENV for kind in kinds(name)]
        if profile.full
        else [(kinds(name)[n % len(kinds(name))], name, value) for n, (name, value) in enumerate(BAD_ENV)]
    )
    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(lambda case: (case, *_run_with(*case, tmp_path)), cases))

    unclear = []
    for (kind, name, value), code, output in results:
        last = output.strip().splitlines()[-1] if output.strip() else ""
        if code in (0, None) or name not in last or "Traceback" in output:
            unclear.append(
                f"{kind} {name}={value!r}: exit {code}, last line {last[:140]!r}"
                f"{' after a traceback' if 'Traceback' in output else ''}"
            )
    chaos_rows.append(
        Row(
            f"6d. bad environment ({profile.name})",
            0,
            0,
            0,
            0,
            0,
            None,
            f"{len(cases)} processes with a bad value, {len(unclear)} without a clear exit",
        )
    )
    assert not unclear, "\n".join(unclear)


@pytest.mark.parametrize("profile", PROFILES, ids=["short", "full"])
def test_hindsight_posts_and_name_floods_do_not_move_the_stats(profile, stack_factory, chaos_rows):
    token, cap = "chaos-publish", 5
    env = {"SIGNALS_PUBLISH_TOKEN": token, "STATS_MAX_ENTRIES": str(cap), "HTTP_RATE_LIMIT": "100000/second"}
    stack = stack_factory(webs=1, workers=1, beats=1, extra_env=env | {"PUBLISH_RATE_LIMIT": "100000/minute"})
    web, symbol = stack.webs[0], stack.symbols[0]
    query = {"symbol": symbol, "timeframe": "1s", "limit": 1000}
    kept = lambda: requests.get(web.url + "/api/candles", params=query, timeout=5).json().get("candles", [])  # noqa: E731
    bars = wait_until(lambda: len(k := kept()) >= 30 and k, 60, 0.2, "30 bars kept")

    def post(body: dict) -> int:
        answer = requests.post(web.url + "/api/signals", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 201, answer.text
        return answer.json()["seq"]

    hindsight = []  # each on a kept bar whose +1 bar closed: its direction chosen knowing the outcome
    for i in range(-30, -10) if profile.full else range(-20, -10):
        kind = "BUY" if bars[i + 1]["close"] >= bars[i]["close"] else "SELL"
        for source in ("webhook", "binance"):  # "binance": the scan's own source, named in the body
            body = {"type": kind, "price": bars[i]["close"], "symbol": symbol, "timeframe": "1s"}
            bar_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(bars[i]["time"] // 1000))
            body |= {"strategy": STRATEGY, "bar_time": bar_time, "source": source, "id": f"h{i}{source}"}
            hindsight.append(post(body))
    names = 60 if profile.full else 20
    for n in range(names):  # each on the bar open now: on time, counted up to the cap
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        post({"type": "BUY", "price": 1, "symbol": symbol, "timeframe": "1s", "strategy": f"f{n}", "bar_time": now})

    def outcomes() -> list[dict]:
        return requests.get(web.url + "/api/outcomes", params={"symbol": symbol, "limit": 1000}, timeout=5).json()[
            "outcomes"
        ]

    def routed() -> dict | None:
        stats = requests.get(web.url + "/api/stats", timeout=5).json()
        late = {o["seq"] for o in outcomes() if "unscored" in o}
        return stats if late >= set(hindsight) and len(stats["stats"]) + stats["not_counted"] >= names else None

    stats = wait_until(routed, 30, 0.2, "every POSTed signal routed by the worker")
    scored = {o["seq"] for o in outcomes() if "h" in o} & set(hindsight)
    counted = [e for e in stats["stats"] if e["strategy"] == STRATEGY]
    over = max(0, len(stats["stats"]) - cap)
    chaos_rows.append(
        Row(
            f"6e. hindsight POSTs, name floods ({profile.name})",
            len(hindsight) + names,
            0,
            len(scored) + over,
            0,
            0,
            None,
            f"{len(hindsight)} POSTs on bars of known outcome: {len(scored)} scored; {names} new names: "
            f"{len(stats['stats'])} entries (cap {cap}), {stats['not_counted']} not counted",
        )
    )
    assert not scored and not counted, (scored, counted)
    assert len(stats["stats"]) == cap and stats["not_counted"] == names - cap
