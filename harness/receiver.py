"""A notification receiver on 127.0.0.1: records every POST; answers each path by a plan, or hangs.

`python -m harness.receiver --port 8099` prints what it gets (the `make run` demo of NOTIFY_URLS).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import contract


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the status it was answered with (None: left hanging)."""

    at: float  # time.time() at arrival
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None


class Receiver:
    """A real HTTP server in a thread; `plan(path, [(status, headers), …])` answers the next requests of a path."""

    def __init__(self, port: int = 0, on_request=None, answer=None):
        """Listen on PORT (0: a free one); serving starts at once; ON_REQUEST(Received) is called for each.

        ANSWER(path, headers) may choose a request's (status, headers) itself (None: the plan's or 200).
        """
        self.requests: list[Received] = []
        self.plans: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.hanging: set[str] = set()
        self.released = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                contract.check_webhook(dict(self.headers.items()), body)  # against docs/asyncapi.json
                path = self.path.split("?", 1)[0]
                with receiver.lock:
                    hang = path in receiver.hanging
                    plan = receiver.plans.get(path)
                    chosen = answer(path, dict(self.headers.items())) if answer and not hang else None
                    status, headers = chosen or ((plan.pop(0) if plan else (200, {})) if not hang else (None, {}))
                    received = Received(at, path, dict(self.headers.items()), body, status)
                    receiver.requests.append(received)
                if on_request:
                    on_request(received)
                if hang:
                    receiver.released.wait(120)  # until the test ends: the caller's read timeout must cut it
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        """http://127.0.0.1:PORT/PATH."""
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        """Answer the next requests to PATH with ANSWERS in turn, then 200."""
        with self.lock:
            self.plans[path] = list(answers)

    def hang(self, path: str) -> None:
        """Never answer PATH (until close)."""
        with self.lock:
            self.hanging.add(path)

    def release(self, path: str) -> None:
        """Answer PATH again from now on (requests already hanging stay so until close)."""
        with self.lock:
            self.hanging.discard(path)

    def received(self, path: str | None = None) -> list[Received]:
        """The requests so far (to PATH), in arrival order."""
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        """Release hanging requests and stop serving."""
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _print(received: Received) -> None:
    try:
        body = json.loads(received.body)
        text = body.get("message") if isinstance(body, dict) and "message" in body else json.dumps(body)
    except ValueError:
        text = received.body.decode(errors="replace")
    key = received.headers.get("Idempotency-Key")
    print(f"{received.path}{f'  [{key}]' if key else ''}  {text}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Print every notification received until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m harness.receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with Receiver(args.port, _print) as receiver:
        print(f"receiving notifications at {receiver.url('/')}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
