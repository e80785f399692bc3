"""Strangers get bounded resources at the transport level, against a real `python asgi.py`: bodies that never
arrive, half requests, request heads dripped a byte at a time, Engine.IO sessions that never connect a namespace, too
many connections from one address."""

import json
import select
import socket
import time

import psutil
import pytest
import requests
import websocket

from harness.polling import wait_until
from harness.ports import is_closed
from tests.chaos.hostile import metric

FD_SLACK = 3  # Redis pool connections may come and go; a leak here is one descriptor per request


def open_fds(web) -> int:
    """Open file descriptors of the web process."""
    return psutil.Process(web.pid).num_fds()


def handshake(web) -> str:
    """Open an Engine.IO polling session; its sid."""
    opening = requests.get(web.url + "/socket.io/?EIO=4&transport=polling", timeout=5).text
    assert opening.startswith("0{"), opening
    return json.loads(opening[1:])["sid"]


def post_head(web, sid: str, length: int) -> bytes:
    """The head of a polling POST that announces LENGTH body bytes."""
    return (
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
        f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fail after TIMEOUT seconds."""
    sock.settimeout(0.2)
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open for {timeout}s; got {data[:200]!r}")


def raw_websocket(web, connect_namespace: bool = True) -> websocket.WebSocket:
    """An Engine.IO websocket; it sends Socket.IO's `40` when CONNECT_NAMESPACE."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{web.port}/socket.io/?EIO=4&transport=websocket", timeout=5)
    opening = ws.recv()
    assert opening.startswith("0{"), opening
    if connect_namespace:
        ws.send("40")
    return ws


@pytest.fixture
def web(start_web):
    """A web process with short socket and connect timeouts."""
    return start_web(SOCKET_TIMEOUT="3", CONNECT_TIMEOUT="2")


def test_polling_posts_without_body_leave_open_files_at_baseline(web):
    handshake(web)  # the first one warms up what a session needs: the baseline is after it
    baseline = open_fds(web)
    for n in range(100):
        sid = handshake(web)
        with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
            sock.sendall(post_head(web, sid, 99_999_999))
            if n % 10 == 0:  # refused at once, body unread, and the server hangs up
                answer = read_until_closed(sock, 5)
                assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
                assert b"\r\nconnection: close\r\n" in answer.lower(), answer[:300]
    # Before the fix each of these parked a green thread on a socket in CLOSE-WAIT for ever.
    wait_until(
        lambda: open_fds(web) <= baseline + FD_SLACK,
        60,
        0.2,
        f"open files back to {baseline} (+{FD_SLACK}), now {open_fds(web)}",
    )
    assert metric(web.url, 'qs_connections_refused_total{reason="body_too_large"}') >= 100


def test_polling_posts_of_a_packet_that_ends_the_session_leave_no_open_file(web):
    handshake(web)
    baseline = open_fds(web)
    for _ in range(100):  # "2" (a ping from a client) makes Engine.IO close the session: it waited for a GET
        sid = handshake(web)
        with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
            sock.sendall(post_head(web, sid, 1) + b"2")
    wait_until(
        lambda: open_fds(web) <= baseline + FD_SLACK,
        60,
        0.2,
        f"open files back to {baseline} (+{FD_SLACK}), now {open_fds(web)}",
    )


def test_a_body_that_does_not_arrive_is_cut_after_the_socket_timeout(web):
    sid = handshake(web)
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        sock.sendall(post_head(web, sid, 100) + b"4")  # one byte of the 100 announced, then silence
        started = time.monotonic()
        answer = read_until_closed(sock, 3 + 5)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert 2.5 < waited < 3 + 5, waited


def test_half_requests_are_closed_after_the_socket_timeout(web):
    handshake(web)
    baseline = open_fds(web)
    sockets = [socket.create_connection(("127.0.0.1", web.port), timeout=5) for _ in range(200)]
    try:
        started = time.monotonic()
        for sock in sockets:
            sock.sendall(b"GET /healthz HT")
        assert requests.get(web.url + "/healthz", timeout=2).status_code == 200
        wait_until(
            lambda: all(is_closed(sock) for sock in sockets), 3 + 7, 0.1, "every half request closed by the server"
        )
        closed_after = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert closed_after > 2.5, f"closed after {closed_after:.1f} s: before the socket timeout"
    wait_until(lambda: open_fds(web) <= baseline + FD_SLACK, 10, 0.2, "open files back to the baseline")


def test_a_request_head_dripped_a_byte_at_a_time_is_cut_after_the_socket_timeout(web):
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Drip: " + b"a" * 10_000
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        started, sent = time.monotonic(), 0
        # One byte every 0.2 s (slowloris): each byte would restart a per-read timeout, never the head's deadline.
        while not select.select([sock], [], [], 0.2)[0]:
            assert time.monotonic() - started < 3 + 5, "the server kept taking the dripped head"
            sock.sendall(head[sent : sent + 1])
            sent += 1
        closed_after = time.monotonic() - started
        assert sock.recv(1024) == b"", "the server answered a head that never ended"
    assert 2.5 < closed_after < 3 + 5, f"closed after {closed_after:.1f} s, SOCKET_TIMEOUT is 3"
    assert requests.get(web.url + "/healthz", timeout=2).status_code == 200


def read_frames_until_closed(ws: websocket.WebSocket, timeout: float) -> list[str]:
    """Text frames received until the server closes the websocket; fail after TIMEOUT seconds."""
    ws.settimeout(timeout)
    frames = []
    try:
        while frame := ws.recv():  # '' is the server's close frame
            frames.append(frame)
    except websocket.WebSocketConnectionClosedException:
        pass
    except websocket.WebSocketTimeoutException:
        raise AssertionError(f"the server kept the websocket open for {timeout}s; got {frames}") from None
    return frames


def test_sessions_that_never_connect_the_namespace_are_closed(web, connect, publisher):
    client = connect(web.url)
    polling_client = connect(web.url, transports=("polling",))
    wait_until(lambda: client.of("welcome") and polling_client.of("welcome"), message="both clients welcomed")
    silent = raw_websocket(web, connect_namespace=False)
    silent_sid = handshake(web)
    started = time.monotonic()

    frames = read_frames_until_closed(silent, 8)
    cut_after = time.monotonic() - started
    assert 1.5 < cut_after < 2 + 3, f"cut after {cut_after:.1f} s, CONNECT_TIMEOUT is 2"
    assert frames == ["1"], frames  # Engine.IO's close packet, then the close frame
    gone = requests.get(f"{web.url}/socket.io/?EIO=4&transport=polling&sid={silent_sid}", timeout=5)
    assert gone.status_code == 400 or gone.text == "1", (gone.status_code, gone.text)
    assert metric(web.url, "qs_idle_sessions_cut_total") >= 2

    def idled_connected() -> bool:
        """Fail if a connected client was cut; True once they idled long enough."""
        assert client.sio.connected and polling_client.sio.connected, "a connected client was cut"
        return time.monotonic() - started > 2 * 3 + 1

    wait_until(idled_connected, 10, 0.1, "the clients idle past twice SOCKET_TIMEOUT")
    publisher.publish_signal({"type": "BUY", "price": 1.0, "id": "after-idle"})
    assert client.wait_signals(1)[0]["id"] == "after-idle"
    assert polling_client.wait_signals(1)[0]["id"] == "after-idle"


def test_connections_over_the_per_address_cap_are_refused(start_web):
    web = start_web(MAX_CONNECTIONS_PER_IP="5")
    sockets = [raw_websocket(web) for _ in range(5)]
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            raw_websocket(web)
        assert refused.value.status_code == 503
        answer = requests.get(web.url + "/healthz", timeout=5)
        assert answer.status_code == 503 and "too many connections" in answer.text
        assert answer.headers["Connection"] == "close" and answer.headers["Content-Type"].startswith("text/plain")

        for ws in sockets[:2]:
            ws.close()
        sockets[:2] = wait_until(lambda: accepted(web, 2), 10, 0.1, "two new websockets accepted")
        with pytest.raises(websocket.WebSocketBadStatusException):
            raw_websocket(web)
    finally:
        for ws in sockets:
            ws.close()
    wait_until(
        lambda: requests.get(web.url + "/healthz", timeout=5).status_code == 200,
        10,
        0.1,
        "requests accepted again once the websockets closed",
    )
    assert metric(web.url, 'qs_connections_refused_total{reason="per_ip_cap"}') >= 3


def accepted(web, count: int) -> list | None:
    """COUNT new websockets, or None (and none kept) while the server refuses them."""
    opened = []
    try:
        for _ in range(count):
            opened.append(raw_websocket(web))
        return opened
    except websocket.WebSocketBadStatusException:
        for ws in opened:
            ws.close()
        return None
