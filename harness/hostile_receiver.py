"""A hostile notification destination on 127.0.0.1: a raw HTTP server that answers each path with an attack.

`/huge`: 200 with a 300 MB body streamed (never allocated), counting the bytes the client let it send;
`/drip`: the status line and headers one byte every DRIP_S seconds; `/redirect`: 307 to another receiver's URL;
anything else: 200, empty. Every request is kept (path, headers, body); every connection's bytes sent are counted.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field

HUGE_BYTES = 300 * 1024 * 1024
DRIP_S = 2.0
_CHUNK = b"\0" * 65_536


@dataclass
class Exchange:
    """One connection: the request, the bytes of the answer the client took, and whether it is over."""

    path: str
    headers: dict[str, str]
    body: bytes
    sent: int = 0
    done: bool = False
    began: float = field(default_factory=time.monotonic)  # the request read
    ended: float | None = None  # the client hung up (or the attack ended)


def _hung_up(sock: socket.socket, wait: float) -> bool:
    """True as soon as the client closes its end (within WAIT seconds), so that its end is timed exactly."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class HostileReceiver:
    """A threaded TCP server speaking just enough HTTP/1.1 to read one request per connection and attack."""

    def __init__(self, redirect_to: str = ""):
        """Listen on a free port; /redirect answers 307 to REDIRECT_TO."""
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                request_line = self.rfile.readline(65_537).decode("latin-1")
                headers = {}
                while (line := self.rfile.readline(65_537).decode("latin-1").rstrip("\r\n")) != "":
                    name, _, value = line.partition(":")
                    headers[name.strip()] = value.strip()
                body = self.rfile.read(int(headers.get("Content-Length") or 0))
                path = request_line.split(" ")[1].split("?", 1)[0] if request_line.count(" ") >= 2 else ""
                exchange = Exchange(path, headers, body)
                with receiver.lock:
                    receiver.exchanges.append(exchange)
                try:
                    receiver._answer(self.connection, exchange)
                except OSError:  # the client closed its end: what it took is counted
                    pass
                finally:
                    exchange.ended = time.monotonic()
                    exchange.done = True

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.redirect_to = redirect_to
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="hostile-receiver", daemon=True
        )
        self.thread.start()

    def _answer(self, sock, exchange: Exchange) -> None:
        def send(data: bytes) -> None:
            sock.sendall(data)
            exchange.sent += len(data)

        if exchange.path == "/huge":
            send(f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE_BYTES}\r\n\r\n".encode())
            while exchange.sent < HUGE_BYTES and not self.stopping.is_set():
                send(_CHUNK)
        elif exchange.path == "/drip":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Slow: " + b"." * 200 + b"\r\n\r\n":
                if self.stopping.is_set() or _hung_up(sock, DRIP_S):
                    return
                send(bytes([byte]))
        elif exchange.path == "/redirect":
            head = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {self.redirect_to}\r\nContent-Length: 0\r\n\r\n"
            send(head.encode())
        else:
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def url(self, path: str, scheme: str = "http") -> str:
        """SCHEME://127.0.0.1:PORT/PATH."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def received(self, path: str | None = None) -> list[Exchange]:
        """The connections so far (to PATH)."""
        with self.lock:
            return [e for e in self.exchanges if path is None or e.path == path]

    def close(self) -> None:
        """Stop every attack and stop serving."""
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HostileReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_closed(exchange: Exchange, timeout: float) -> float:
    """Poll until EXCHANGE's connection is over (the client hung up); return when (time.monotonic())."""
    from harness.polling import wait_until

    wait_until(lambda: exchange.done, timeout, 0.01, f"the client hanging up on {exchange.path}")
    return time.monotonic()
