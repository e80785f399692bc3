"""deploy/nginx.conf in front of two real web processes: sticky polling and websocket clients, exactly once, recovery.

The nginx configuration is the real deploy/nginx.conf, rewritten only where a test must differ (ports, the upstream's
server lines, writable paths, `user`). Each client connects from its own loopback address (127.0.N.1), as
clients on different machines would: `ip_hash` keys on it, so the clients spread over both web processes and each
polling client keeps its process for every request.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import engineio.payload
import pytest
import requests
from requests.adapters import HTTPAdapter

from harness.clients import RecordingClient, close_all
from harness.nginx import CONF, render
from harness.polling import wait_until
from harness.ports import free_port

INSTALL_HINT = (
    "nginx is not installed: `apt-get install -y nginx` (Debian/Ubuntu; make test installs it: .ci/system-deps)"
)
FIRST_SIGNALS = 30
CLIENTS_PER_TRANSPORT = 6


def nginx_binary() -> str:
    """The nginx executable; the test fails (never skips) without one."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if not found:
        pytest.fail(INSTALL_HINT)
    return found


class SourceAddressAdapter(HTTPAdapter):
    """requests' adapter whose connections leave from SOURCE (a loopback address)."""

    def __init__(self, source: str):
        """Bind every connection of this adapter to SOURCE."""
        self.source = source
        super().__init__()

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        """urllib3 binds the source address itself."""
        super().init_poolmanager(connections, maxsize, block, source_address=(self.source, 0), **pool_kwargs)


class Client(RecordingClient):
    """A python-socketio client on one transport, connecting from its own loopback address; records every event."""

    def __init__(self, url: str, transport: str, source: str, auth: dict | None = None):
        """Connect to URL (nginx) over TRANSPORT from SOURCE with AUTH."""
        self.transport, self.source = transport, source
        http = requests.Session()
        http.mount("http://", SourceAddressAdapter(source))
        options: dict = {"http_session": http}
        if transport == "websocket":
            # websocket-client cannot bind a source address; it takes a connected socket instead.
            parts = urlsplit(url)
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10, source_address=(source, 0))
            options["websocket_extra_options"] = {"socket": sock}
        super().__init__(url, auth, transports=(transport,), client_options=options)

    def seqs(self) -> list[int]:
        """The seq of every new_signal received so far, in arrival order."""
        return [signal["seq"] for signal in self.of("new_signal")]

    def gone(self) -> bool:
        """True once the connection was lost."""
        return bool(self.of("disconnect")) or not self.sio.connected


class Nginx:
    """nginx run in the foreground (master and workers) as a child of the test, stopped by its PID."""

    def __init__(self, conf_text: str, prefix: Path, port: int):
        """Write the configuration under PREFIX."""
        self.prefix, self.port = prefix, port
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(conf_text)
        self.log_path = prefix / "quantum-signals.error.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL clients connect to."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """nginx's error log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Nginx:
        """Check the configuration, start nginx, wait until it proxies /healthz."""
        args = [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.log_path)]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t refused the rendered deploy/nginx.conf:\n{check.stderr}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*args, "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def proxies() -> bool:
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(lambda: proxies() or self.process.poll() is not None, 15, 0.05, "nginx proxying /healthz")
        assert self.process.poll() is None, f"nginx exited:\n{self.log()[-3000:]}"
        return self

    def stop(self) -> None:
        """Fast shutdown by the master's PID (it stops its workers); SIGKILL to its own group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def nginx(tmp_path):
    """Factory: nginx from deploy/nginx.conf in front of the given upstream ports; stopped after the test."""
    nginx_binary()  # fail first, with how to install it
    started: list[Nginx] = []

    def start(upstream_ports: list[int]) -> Nginx:
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        port = free_port()
        server = Nginx(render(CONF.read_text(), port, upstream_ports, prefix), prefix, port)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def clients(monkeypatch):
    """Factory: Clients, all disconnected after the test."""
    # The server answers a long-poll with every packet queued for the client (a burst of signals, a replay of up
    # to hundreds), but python-engineio's client refuses a response of over 16 packets and drops its session
    # ("Unexpected packet from server"). Browsers' engine.io-client has no such cap; a Python polling client
    # must raise it, with the knob python-engineio documents for this (miguelgrinberg/python-engineio#142).
    monkeypatch.setattr(engineio.payload.Payload, "max_decode_packets", 10_000)
    made: list[Client] = []

    def make(*args, **kwargs) -> Client:
        client = Client(*args, **kwargs)
        made.append(client)
        return client

    yield make
    close_all(made)


def clients_connected(web) -> int:
    """The web process's own count of connected Socket.IO clients (its /metrics, not through nginx)."""
    text = requests.get(web.url + "/metrics", timeout=2).text
    return int(float(re.search(r"^qs_clients_connected (\S+)$", text, re.M).group(1)))


def wait_signals(clients: list[Client], last: int, timeout: float = 15) -> None:
    """Wait until every client received signal LAST; on timeout say what each one got."""
    try:
        wait_until(lambda: all(c.seqs() and c.seqs()[-1] >= last for c in clients), timeout, message=f"signal {last}")
    except AssertionError as exc:
        got = {f"{c.transport} {c.source}": (len(c.seqs()), c.seqs()[-1:], c.gone()) for c in clients}
        raise AssertionError(f"{exc}; (count, last seq, gone) per client: {got}") from None


def answered_by_nginx(response: requests.Response) -> bool:
    """True for nginx's own error page (the web processes answer in JSON or plain text)."""
    return "<center>nginx</center>" in response.text


def publish(publisher, n: int) -> dict:
    """Publish the Nth signal of the test with the project's publisher."""
    return publisher.publish_signal(
        {"type": "BUY" if n % 2 else "SELL", "price": 100 + n, "symbol": "BTCUSDT", "id": f"nginx-{n}"}
    )


@pytest.mark.alone
def test_nginx_spreads_clients_over_web_processes_exactly_once_and_recovers(start_web, nginx, clients, publisher):
    # Behind a proxy every client has nginx's address: the per-address limits are nginx's (deploy/README.md).
    env = {"MAX_CONNECTIONS_PER_IP": "0", "HTTP_RATE_LIMIT": "100000/second"}
    webs = [start_web(wait=False, **env), start_web(wait=False, **env)]
    for web in webs:
        web.wait_ready()
    proxy = nginx([web.port for web in webs])

    sources = {}
    for i in range(2 * CLIENTS_PER_TRANSPORT):
        transport = "polling" if i < CLIENTS_PER_TRANSPORT else "websocket"
        source = f"127.0.{i + 1}.1"  # ip_hash keys on the first three octets of an IPv4 address
        sources[source] = clients(proxy.url, transport, source)
    everyone = list(sources.values())
    wait_until(lambda: all(c.of("welcome") for c in everyone), 10, message="every client welcomed")
    epoch = everyone[0].of("welcome")[0]["epoch"]

    def all_counted():
        counts = [clients_connected(web) for web in webs]
        return counts if sum(counts) == len(everyone) else None

    counts = wait_until(all_counted, 10, message="both web processes counting every client")
    assert min(counts) > 0, f"ip_hash sent every client to one web process: {counts}"

    # Live: every client, polling or websocket, whichever process holds it, gets each signal once, in order.
    for n in range(1, FIRST_SIGNALS + 1):
        publish(publisher, n)
    expected = list(range(1, FIRST_SIGNALS + 1))
    wait_signals(everyone, FIRST_SIGNALS)
    for client in everyone:
        assert client.seqs() == expected, f"{client.transport} client from {client.source}"
        assert not client.gone(), f"{client.transport} client from {client.source} lost its session"

    # Recovery: one web process crashes while signals keep coming; its clients come back through nginx with `since`.
    published = [FIRST_SIGNALS]
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            published[0] += 1
            publish(publisher, published[0])
            stop.wait(0.01)  # a steady stream, ~100/s

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        victim, survivor = webs
        on_victim = counts[0]
        victim.kill()

        def victims_dropped():
            gone = [c for c in everyone if c.gone()]
            return gone if len(gone) == on_victim else None

        dropped = wait_until(victims_dropped, 15, message=f"the {on_victim} clients of the killed process dropped")
        transports = {c.transport for c in dropped}
        assert transports == {"polling", "websocket"}, f"the victim held only {transports}: pick other source addresses"

        before_reconnect = published[0]
        recovered = {}
        for old in dropped:
            auth = {"since": old.seqs()[-1], "epoch": epoch}
            recovered[old.source] = clients(proxy.url, old.transport, old.source, auth=auth)
        after_reconnect = published[0]
        wait_until(lambda: published[0] >= after_reconnect + 20, 10, message="20 more signals after the reconnects")
    finally:
        stop.set()
        producer.join(10)
    total = published[0]
    assert after_reconnect > before_reconnect, "signals were published while the clients reconnected"

    live = [c for c in everyone if c not in dropped] + list(recovered.values())
    wait_signals(live, total)
    expected = list(range(1, total + 1))
    for old in dropped:
        new = recovered[old.source]
        assert not new.of("resync"), "same epoch: no resync"
        assert old.seqs() + new.seqs() == expected, f"{old.transport} client from {old.source}: gap or duplicate"
    for client in everyone:
        if client not in dropped:
            assert client.seqs() == expected, f"{client.transport} client from {client.source} on the survivor"
            assert not client.gone()
    assert clients_connected(survivor) == len(everyone), "nginx sent every reconnect to the surviving process"

    # Per-client limits are nginx's own (its error page, not a web process's answer): a body over 16 KiB is refused
    # before any web process reads it ...
    big = requests.post(proxy.url + "/socket.io/?EIO=4&transport=polling", data=b"x" * 20000, timeout=5)
    assert big.status_code == 413 and answered_by_nginx(big), big.text
    # ... and one address over the REST rate is answered 429 by nginx while another address is still served.
    flooder = requests.Session()
    flooder.mount("http://", SourceAddressAdapter("127.0.200.1"))
    answers: list[requests.Response] = []

    def refused() -> bool:
        answers.append(flooder.get(proxy.url + "/api/signals?limit=1", timeout=5))
        return answers[-1].status_code == 429

    wait_until(refused, 10, 0, "nginx's 429 for one address")
    assert {r.status_code for r in answers} == {200, 429}
    assert answered_by_nginx(answers[-1]), answers[-1].text
    other = requests.Session()
    other.mount("http://", SourceAddressAdapter("127.0.201.1"))
    assert other.get(proxy.url + "/api/signals?limit=1", timeout=5).status_code == 200
