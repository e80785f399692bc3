"""Property-based fuzzing of a real web process at every boundary strangers reach: HTTP query parameters,
messages PUBLISHed on the channel, Socket.IO frames and connect auth over raw websockets."""

import itertools
import json
import time
from urllib.parse import quote

import pytest
import redis as redis_py
import requests
import websocket
from hypothesis import example, given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from backend.signal_schema import HISTORY_KEY, InvalidSignal, parse_signal, valid_symbol
from harness.clients import RecordingClient
from harness.polling import wait_until
from tests.chaos.hostile import metric
from tests.fuzz_strategies import (
    ANY_CHAR,
    HUGE_INTS,
    JSON_LEAVES,
    JSON_VALUES,
    MESSAGES,
    PLAUSIBLE_SIGNALS,
    PY_SIGNALS,
    SURROGATES,
    TEXT,
    assert_contract,
    deep_values,
    json_text,
)

MAX_BYTES = 65536  # the web process's MAX_SIGNAL_BYTES (its default)
MAX_SEQ_HTTP = 2**64 - 1
# The fuzzer is one address sending hundreds of requests a second; the per-address limit has its own tests.
UNLIMITED = {"HTTP_RATE_LIMIT": "1000000/second"}
SENTINELS = itertools.count()


@pytest.fixture
def fuzz_web(start_web):
    """One web process without the per-address HTTP rate limit."""
    return start_web(**UNLIMITED)


def assert_healthy(web, clients: int) -> None:
    """The process answers probes at once, counts exactly CLIENTS connected clients, and logged no traceback."""
    started = time.monotonic()
    assert requests.get(web.url + "/healthz", timeout=2).status_code == 200
    assert time.monotonic() - started < 1.0, "/healthz is slow after the fuzzing"
    assert requests.get(web.url + "/readyz", timeout=2).status_code == 200
    try:
        wait_until(lambda: metric(web.url, "qs_clients_connected") == clients)
    except AssertionError:
        counted = metric(web.url, "qs_clients_connected")
        raise AssertionError(f"qs_clients_connected is {counted:g}, not {clients}, 10 s after the fuzzing") from None
    assert "Traceback" not in web.log(), web.log()[-3000:]


def still_delivers(client: RecordingClient, publisher) -> None:
    """A signal from the project's publisher reaches CLIENT."""
    stored = publisher.publish_signal(
        {"type": "BUY", "price": 1.5, "symbol": "BTCUSDT", "id": f"after-fuzz-{next(SENTINELS)}"}
    )
    wait_until(lambda: stored in client.signals(), message="a signal published after the fuzzing")


# ---------------------------------------------------------------------------------------------------- (a) HTTP

QUERY_NAMES = st.sampled_from(["since", "limit", "symbol", "since", "limit", "symbol", "SINCE", "symbol[]", ""])
QUERY_VALUES = st.one_of(
    TEXT,
    st.integers().map(str),
    st.integers(-5, 1200).map(str),
    HUGE_INTS.map(str),
    st.from_regex(r"[A-Za-z0-9]{0,40}", fullmatch=True),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1000",
            "1001",
            str(MAX_SEQ_HTTP),
            str(MAX_SEQ_HTTP + 1),
            "1" * 5000,
            " 5",
            "5\x00",
            "\u0661\u0662",
            "+3",
            "1_0",
            "0x1f",
            "1e3",
            "NaN",
            "btcusdt",
            "BTC USDT",
            "\u00df" * 17,
            "\ufb01",
            "\ud800",
            "%",
            "&",
            "=",
        ]
    ),
)


def _query(params: list[tuple[str, str]]) -> str:
    """PARAMS as a query string, each byte percent-encoded (a lone surrogate as the bytes it would be)."""
    return "&".join(
        quote(name) + "=" + quote(value.encode("utf-8", "surrogatepass"), safe="") for name, value in params
    )


def _must_succeed(params: list[tuple[str, str]]) -> bool:
    """True when the last since/limit/symbol (the ones FastAPI reads) are plainly valid, so 400 would be wrong."""
    last = dict(params)
    since, limit, symbol = last.get("since", ""), last.get("limit", ""), last.get("symbol", "")
    return (
        (since == "" or (since.isascii() and since.isdigit() and len(since) < 30 and int(since) <= MAX_SEQ_HTTP))
        and (limit == "" or (limit.isascii() and limit.isdigit() and len(limit) < 30 and 1 <= int(limit) <= 1000))
        and (symbol == "" or valid_symbol(symbol.upper()))
    )


def test_signals_query_parameters_answer_200_or_400(fuzz_web, publisher, redis_client):
    published = [
        publisher.publish_signal(
            {
                "type": "BUY" if n % 2 else "SELL",
                "price": 100 + n,
                "id": f"q{n}",
                "symbol": "BTCUSDT" if n % 3 else "ETHUSDT",
            }
        )
        for n in range(6)
    ]
    # Entries written around the publisher (a hand-made XADD, an old version): the API must step over them.
    for n, sig in enumerate(
        [
            b'{"type":"BUY","price":1' + b"0" * 400 + b"}",
            b"not json",
            b'{"type":"BUY","price":NaN}',
            b'{"type":"BUY","price":1,"x":' + b"[" * 40 + b"]" * 40 + b"}",
            b'{"type":"BUY","price":1,"x":"\\udc00"}',
        ],
        start=100,
    ):
        redis_client.xadd(HISTORY_KEY, {"sym": "BTCUSDT", "sig": sig}, id=f"{n}-0")

    @given(st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=5))
    @example([("since", "0"), ("limit", "1000")])
    @example([("symbol", "BTCUSDT"), ("symbol", "\ud800")])
    def property_(params):
        query = _query(params)
        answer = requests.get(f"{fuzz_web.url}/api/signals?{query}", timeout=5)
        assert answer.status_code in (200, 400), (answer.status_code, answer.text[:300])
        body = answer.json()
        if answer.status_code == 400:
            assert set(body) == {"error"} and isinstance(body["error"], str), body
            assert not _must_succeed(params), body
            return
        assert set(body) == {"epoch", "signals"}, body
        assert body["epoch"] == published[0]["epoch"]
        for signal in body["signals"]:
            assert_contract(signal)
            assert signal in published
        seqs = [signal["seq"] for signal in body["signals"]]
        assert seqs == sorted(seqs)

    property_()
    assert_healthy(fuzz_web, clients=0)


# ------------------------------------------------------------------------------------------------- (b) channel


def _outside_signal(raw: bytes) -> dict | None:
    """What the relay sends live for RAW: an accepted signal without seq and epoch, else None."""
    try:
        signal = parse_signal(raw, MAX_BYTES)
    except Exception:  # noqa: BLE001 - the pure tests hold parse_signal to InvalidSignal; here it is dropped either way
        return None
    return signal if signal.get("seq") is None and signal.get("epoch") is None else None


def test_channel_messages_never_reach_clients_broken(fuzz_web, publisher, redis_server):
    client = RecordingClient(fuzz_web.url)
    raw_redis = redis_py.Redis.from_url(redis_server.url)
    try:
        wait_until(lambda: client.of("welcome"), message="welcome")

        @given(st.lists(MESSAGES, min_size=1, max_size=6))
        @example([b'{"type":"BUY","price":1' + b"0" * 400 + b"}", b'{"type":"SELL","price":2,"seq":null}'])
        def property_(messages):
            before = len(client.signals())
            for raw in messages:
                raw_redis.publish("quantum_signals", raw)
            sentinel = publisher.publish_signal({"type": "SELL", "price": 3, "id": f"sentinel-{next(SENTINELS)}"})
            wait_until(lambda: sentinel in client.signals(), interval=0.002, message="the sentinel signal")
            received = client.signals()[before:]
            for signal in received:
                assert_contract(signal)
            expected = [signal for signal in map(_outside_signal, messages) if signal is not None]
            assert received == [*expected, sentinel]

        property_()
        still_delivers(client, publisher)
        assert_healthy(fuzz_web, clients=1)
    finally:
        client.close()
        raw_redis.close()


def test_what_the_publisher_publishes_the_relay_accepts(publisher, redis_client):
    @given(st.one_of(PLAUSIBLE_SIGNALS, PY_SIGNALS))
    @example({"type": "BUY", "price": 10**400})
    @example({"type": "SELL", "price": 1, "indicators": json.loads("[" * 31 + "]" * 31)})
    def property_(signal):
        try:
            stored = publisher.publish_if_new(signal)
        except InvalidSignal:
            return
        if stored is not None:  # a repeated id publishes nothing
            assert_contract(stored)
            raw = redis_client.xrevrange(HISTORY_KEY, count=1)[0][1]["sig"]
            assert parse_signal(raw.encode(), MAX_BYTES) == stored

    property_()


# -------------------------------------------------------------------------------------------- (c) Socket.IO frames


def _open(url: str, connect: bool) -> websocket.WebSocket:
    """A raw websocket past the Engine.IO handshake; with CONNECT, also past a plain Socket.IO connect."""
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", timeout=5
    )
    assert ws.recv().startswith("0{")
    if connect:
        ws.send("40")
        assert ws.recv().startswith("40{")
    return ws


def _answer(ws: websocket.WebSocket) -> str:
    """The server's first Socket.IO packet on WS other than Engine.IO pings."""
    while True:
        frame = ws.recv()
        if frame.startswith("4"):
            return frame


def _connect_decodes(payload: bytes) -> bool:
    """True when python-socketio can decode a CONNECT packet carrying PAYLOAD (a leading digit reads as an ack id)."""
    try:
        sio_packet.Packet(encoded_packet="0" + payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


AUTH_VALUES = st.one_of(
    JSON_LEAVES,
    st.sampled_from([-1, 0, 1, 10**30, "1", "-1", "", "BTCUSDT", ["BTCUSDT"], "a,b", [1], {"a": 1}]),
    st.lists(TEXT, max_size=3),
    deep_values(max_depth=40),
)
AUTHS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "since": AUTH_VALUES,
            "symbols": AUTH_VALUES,
            "epoch": AUTH_VALUES,
            "token": AUTH_VALUES,
            "extra": JSON_VALUES,
        },
    ),
    JSON_VALUES,
)
EVENTS = st.one_of(
    st.sampled_from(
        ["connect", "disconnect", "subscribe", "new_signal", "welcome", "message", "json", "connect_error"]
    ),
    TEXT,
)
EVENT_ARGS = st.one_of(JSON_VALUES, st.fixed_dictionaries({"symbols": AUTH_VALUES}))
PACKET_BODIES = st.one_of(
    st.builds(
        json_text, st.builds(lambda name, args: [name, *args], EVENTS, st.lists(EVENT_ARGS, max_size=3)), st.booleans()
    ),
    st.builds(json_text, JSON_VALUES, st.booleans()),
    st.binary(max_size=40),
    st.text(st.one_of(ANY_CHAR, SURROGATES), max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
)
PREFIXES = st.sampled_from(
    [
        b"4",
        b"42",
        b"42",
        b"42",
        b"40",
        b"41",
        b"43",
        b"44",
        b"45",
        b"451-",
        b"421",
        b"4217",
        b"42/x,",
        b"40/x,",
        b"2",
        b"3",
        b"6",
        b"5",
        b"1",
        b"0",
        b"",
        b"4" + b"9" * 12,
    ]
)


FRAMES = st.tuples(
    PREFIXES, PACKET_BODIES, st.sampled_from([websocket.ABNF.OPCODE_TEXT] * 5 + [websocket.ABNF.OPCODE_BINARY])
)


def test_socketio_frames_and_connect_auth_leave_the_server_whole(fuzz_web, publisher):
    client = RecordingClient(fuzz_web.url)
    try:
        wait_until(lambda: client.of("welcome"), message="welcome")

        @given(AUTHS, st.booleans())
        @example({"since": float("inf")}, True)
        @example({"since": 1, "symbols": ["BTCUSDT"], "token": "\ud800"}, False)
        def connect_auth(auth, ascii_only):
            payload = json_text(auth, ascii_only)
            ws = _open(fuzz_web.url, connect=False)
            try:
                ws.send(b"40" + payload, opcode=websocket.ABNF.OPCODE_TEXT)
                if not _connect_decodes(payload):
                    return  # python-socketio drops it unanswered; the session sweeper closes the connection
                try:
                    answer = _answer(ws)
                except websocket.WebSocketTimeoutException:
                    raise AssertionError(f"no answer to a connect with auth {auth!r}") from None
                except websocket.WebSocketConnectionClosedException:
                    raise AssertionError(f"connection closed on a connect with auth {auth!r}") from None
                assert answer.startswith(("40{", "44{")), answer
                assert json.loads(answer[2:])
            finally:
                ws.close(timeout=1)

        @settings(max_examples=300)  # a few milliseconds each
        @given(st.booleans(), st.lists(FRAMES, min_size=1, max_size=4))
        @example(
            True,
            [
                (b"42", b'["connect",{"since":0}]', websocket.ABNF.OPCODE_TEXT),
                (b"42", b'["disconnect"]', websocket.ABNF.OPCODE_TEXT),
            ],
        )
        @example(True, [(b"42", b"[" * 3000 + b"]" * 3000, websocket.ABNF.OPCODE_TEXT)])
        @example(True, [(b"42", b'["subscribe",{"symbols":["BTCUSDT"]},2,3]', websocket.ABNF.OPCODE_TEXT)])
        def frames(connect, sent):
            ws = _open(fuzz_web.url, connect)
            try:
                for prefix, body, opcode in sent:
                    ws.send(prefix + body, opcode=opcode)
            except (websocket.WebSocketConnectionClosedException, OSError):
                pass  # the server may hang up on junk; the properties are checked on the server below
            finally:
                ws.close(timeout=1)

        connect_auth()
        frames()
        still_delivers(client, publisher)
        assert_healthy(fuzz_web, clients=1)
    finally:
        client.close()


# python-engineio decodes a frame outside its try; compat.engineio_bad_frame_ends_session closes such a session.
def test_an_undecodable_engineio_frame_ends_the_session_at_once(fuzz_web):
    ws = _open(fuzz_web.url, connect=True)
    ws.send("x")  # or "", or "1" + "[" * 2000 + "]" * 2000 (RecursionError)
    ws.close(timeout=1)
    # Disconnects take milliseconds; the phantom stays for the ping timeout (25 + 20 s).
    wait_until(
        lambda: metric(fuzz_web.url, "qs_clients_connected") == 0,
        timeout=2,
        message="the client that sent an undecodable frame disconnected",
    )


# A list as event name raised in python-socketio's green thread; compat.socketio_event_errors_logged logs one line.
def test_a_non_string_event_name_logs_no_traceback(fuzz_web):
    ws = _open(fuzz_web.url, connect=True)
    try:
        ws.send('42[["subscribe"],{}]')
        ws.send('421["subscribe",{}]')  # handled after the one above: its answer means that one ran
        wait_until(lambda: _answer(ws).startswith("431"), message="the ack of the second event")
    finally:
        ws.close(timeout=1)
    assert "Traceback" not in fuzz_web.log()
