"""The pure ASGI middlewares on their own (HostCheck, ConnectionLimits): what a server hands them, what they send."""

import asyncio

import pytest

from backend.web.connection_limits import ConnectionLimits
from backend.web.security import SECURITY_HEADERS, HostCheck
from harness import loops


class Recorder:
    """An inner ASGI app that records the body it read and answers 200 (or raises, or holds websockets for ever)."""

    def __init__(self, behaviour: str = "answer"):
        """BEHAVIOUR: "answer", "raise", or "hang" (a websocket: never returns until cancelled)."""
        self.behaviour, self.bodies, self.calls = behaviour, [], 0

    async def __call__(self, scope, receive, send):
        """Read the whole body, then behave."""
        self.calls += 1
        if scope["type"] == "http":
            body, more = b"", True
            while more:
                message = await receive()
                body, more = body + message.get("body", b""), message.get("more_body", False)
            self.bodies.append(body)
        if self.behaviour == "raise":
            raise RuntimeError("the app failed")
        if self.behaviour == "hang" and scope["type"] == "websocket":
            await asyncio.Event().wait()
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-frame-options", b"SAMEORIGIN")]})
            await send({"type": "http.response.body", "body": b"ok"})


def scope(kind: str = "http", path: str = "/api/signals", headers=(), client="10.0.0.1", extensions=None) -> dict:
    """An ASGI scope as a server makes it."""
    return {
        "type": kind,
        "path": path,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
        "client": (client, 40000),
        "extensions": extensions if extensions is not None else {},
    }


def body_messages(*chunks: bytes, end: str = "complete"):
    """A RECEIVE handing CHUNKS as http.request messages; END: "complete" (the last says so), "hang" (the client
    stops sending) or "disconnect" (the client leaves); after them, a disconnect."""
    queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    if end == "complete":
        queue[-1]["more_body"] = False

    async def receive():
        if queue:
            return queue.pop(0)
        if end == "hang":
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


def run(app, the_scope, receive=None) -> list[dict]:
    """Run APP on THE_SCOPE; every message it sent."""
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    loops.run(app(the_scope, receive or body_messages(b""), send))
    return sent


def status_and_headers(sent: list[dict]) -> tuple[int, dict[str, str]]:
    """The status and headers (lower-case names) of the response start in SENT."""
    start = next(m for m in sent if m["type"].endswith("response.start"))
    return start["status"], {name.decode(): value.decode() for name, value in start["headers"]}


def test_a_chunked_body_over_the_limit_is_413_and_never_reaches_the_app():
    inner = Recorder()
    limits = ConnectionLimits(inner, 0, 10, 5)
    chunked = scope(headers=[("transfer-encoding", "chunked")])

    sent = run(limits, chunked, body_messages(b"12345", b"67890", b"X"))

    status, headers = status_and_headers(sent)
    assert status == 413 and headers["connection"] == "close" and inner.calls == 0
    assert sent[-1]["body"] == b"request body larger than 10 bytes\n"


def test_a_body_read_whole_within_its_path_limit_is_handed_to_the_app_at_once():
    inner = Recorder()
    limits = ConnectionLimits(inner, 0, 4, 5, {"/api/signals": 16})

    sent = run(limits, scope(headers=[("content-length", "12")]), body_messages(b"hello ", b"world!"))

    assert status_and_headers(sent)[0] == 200 and inner.bodies == [b"hello world!"]
    refused = run(limits, scope(path="/socket.io/", headers=[("content-length", "12")]), body_messages(b"x" * 12))
    assert status_and_headers(refused)[0] == 413  # the other paths keep the small limit, unread


def test_a_body_that_stalls_is_cut_with_408_after_the_deadline():
    inner = Recorder()
    limits = ConnectionLimits(inner, 0, 100, 0.2)

    sent = run(limits, scope(headers=[("content-length", "50")]), body_messages(b"abc", end="hang"))

    status, headers = status_and_headers(sent)
    assert status == 408 and headers["connection"] == "close" and inner.calls == 0
    assert b"did not arrive within 0.2 s" in sent[-1]["body"]


def test_a_client_gone_before_its_body_gets_no_answer():
    inner = Recorder()

    gone = body_messages(b"abc", end="disconnect")

    sent = run(ConnectionLimits(inner, 0, 100, 5), scope(headers=[("content-length", "50")]), gone)

    assert sent == [] and inner.calls == 0


@pytest.mark.parametrize("behaviour", ["answer", "raise"])
def test_the_per_address_slot_is_given_back_however_the_request_ends(behaviour):
    limits = ConnectionLimits(Recorder(behaviour), 1, 100, 5)

    for _ in range(3):
        try:
            sent = run(limits, scope())
        except RuntimeError:
            sent = None
        assert sent is None or status_and_headers(sent)[0] == 200
    assert limits.active == {}


def test_a_websocket_holds_its_slot_and_the_next_one_from_that_address_is_refused_503():
    limits = ConnectionLimits(Recorder("hang"), 1, 100, 5)
    denial = {"websocket.http.response": {}}

    async def scenario():
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        held = asyncio.create_task(limits(scope("websocket", "/socket.io/", extensions=denial), None, send))
        await asyncio.sleep(0)  # one turn of the loop: the task runs up to the app's wait, holding its slot
        assert limits.active == {"10.0.0.1": 1}
        await limits(scope("websocket", "/socket.io/", extensions=denial), None, send)
        other = scope("http", client="10.0.0.2")
        await limits(other, body_messages(b""), send)  # another address is not counted against it
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
        return sent

    sent = loops.run(scenario())

    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 503
    assert b"too many connections from 10.0.0.1 (at most 1)" in sent[1]["body"]
    assert sent[2]["status"] == 200 and limits.active == {}


def test_a_websocket_from_a_host_not_allowed_is_refused_before_the_app_runs():
    inner = Recorder()
    check = HostCheck(inner, ("example.com",))
    headers = [("host", "evil.test")]

    with_denial = run(check, scope("websocket", "/socket.io/", headers, extensions={"websocket.http.response": {}}))
    without = run(check, scope("websocket", "/socket.io/", headers, extensions={}))

    status, sent_headers = status_and_headers(with_denial)
    assert status == 400 and sent_headers["x-content-type-options"] == "nosniff"
    assert with_denial[-1]["body"] == b'{"error": "host \'evil.test\' is not in ALLOWED_HOSTS"}'
    assert without == [{"type": "websocket.close", "code": 1008}]
    assert inner.calls == 0


def test_security_headers_complete_a_response_and_keep_what_the_app_set():
    sent = run(HostCheck(Recorder(), ()), scope(headers=[("host", "anything")]))

    status, headers = status_and_headers(sent)
    assert status == 200 and headers["x-frame-options"] == "SAMEORIGIN"  # the app's own value wins
    assert [name for name, _ in sent[0]["headers"]].count(b"x-frame-options") == 1
    for name, value in SECURITY_HEADERS.items():
        if name != "X-Frame-Options":
            assert headers[name.lower()] == value
