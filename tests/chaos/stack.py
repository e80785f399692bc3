"""The whole product as separate processes on a test-owned Redis: webs, workers, beats, a loopback exchange."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from backend.embedded_redis import EmbeddedRedis, free_port
from backend.redis_client import make_redis
from tests.chaos.exchange import STRATEGY
from tests.support import ROOT, ServerProcess, WebServer, wait_until

BAR_MS = 1000  # TIMEFRAME=1s: with the zigzag market every symbol fires once a second


def procfile_command(kind: str, env: dict[str, str]) -> list[str]:
    """The Procfile's command line for KIND, with ${VAR:-default} expanded and `python`/`celery` run from this venv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            command = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), command)
            args = shlex.split(command)
            if args[0] == "python":
                return [sys.executable, *args[1:]]
            if args[0] == "celery":
                return [sys.executable, "-m", "celery", *args[1:]]
            return args
    raise AssertionError(f"no {kind!r} process in the Procfile")


def symbols(count: int) -> list[str]:
    """COUNT distinct symbol names."""
    return [f"SYM{i:03d}USDT" for i in range(count)]


class Exchange(ServerProcess):
    """`python -m tests.chaos.exchange` (consistent bars, ExchangeServer's faults) as its own process."""

    def __init__(self, log_dir: Path):
        """Pick the port; start() runs it."""
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "tests.chaos.exchange", "--port", str(self.port)],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            "exchange",
            log_dir,
        )

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Exchange:
        """Start and wait until it answers."""
        super().start()
        wait_until(
            lambda: "listening on" in self.log() or self.process.poll() is not None, 20, 0.05, "exchange listening"
        )
        assert self.process.poll() is None, self.log()
        return self

    def control(self, **command) -> dict:
        """Apply a /_control command; return the state."""
        answer = requests.post(self.url + "/_control", json=command, timeout=5)
        answer.raise_for_status()
        return answer.json()

    def produce(self, names: list[str], on: bool = True) -> None:
        """Serve markets that fire a signal on every bar (ON) or never."""
        self.control(**{"zigzag" if on else "flat": names})

    def counts(self) -> dict[str, int]:
        """Klines requests per symbol so far."""
        return self.control()["counts"]


class ChaosStack:
    """One Redis, N web processes, M Celery workers, beats and an exchange; every process stopped by PID."""

    def __init__(
        self,
        log_dir: Path,
        symbol_count: int = 4,
        persist: bool = True,
        tls: bool = False,
        extra_env: dict[str, str] | None = None,
    ):
        """Choose the layout; start() runs it."""
        self.log_dir = log_dir
        self.symbols = symbols(symbol_count)
        self.tls = tls
        self.redis = TlsRedis() if tls else EmbeddedRedis(persist=persist)
        self.exchange = Exchange(log_dir)
        self.extra_env = extra_env or {}
        self.webs: list[WebServer] = []
        self.workers: list[ServerProcess] = []
        self.beats: list[ServerProcess] = []
        self._names = 0

    @property
    def redis_url(self) -> str:
        """The URL every process is given."""
        return self.redis.url

    def client(self, **overrides):
        """A decoded redis-py client on the stack's Redis."""
        return make_redis(self.redis_url, **overrides)

    def env(self, **extra) -> dict[str, str]:
        """Environment of a product process."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SIGNALS_", "CORS_", "STRATEGIES", "SYMBOLS", "REDIS_", "CHAOS_"))
        }
        env.update(
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
            SIGNAL_CHANNEL="quantum_signals",
            MARKET_SOURCE="binance",
            BINANCE_API_URL=self.exchange.url,
            SCAN_INTERVAL="1",
            TIMEFRAME="1s",
            SYMBOLS=",".join(self.symbols),
            STRATEGIES=STRATEGY,
            HISTORY_MAXLEN="200000",
            # Every client and flood here comes from 127.0.0.1: hundreds of them per web process
            # (the soak's 500, the hostile flood's 600) would hit the per-address cap.
            MAX_CONNECTIONS_PER_IP="0",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _name(self, kind: str) -> str:
        self._names += 1
        return f"{kind}{self._names}"

    def start(self, webs: int = 2, workers: int = 2, beats: int = 1) -> ChaosStack:
        """Start everything in parallel and wait until each is ready; production starts off."""
        self.redis.start()
        self.exchange.start()
        self.exchange.produce(self.symbols, on=False)
        new_webs = [self.add_web(wait=False) for _ in range(webs)]
        new_workers = [self.add_worker(wait=False) for _ in range(workers)]
        for _ in range(beats):
            self.add_beat()
        for web in new_webs:
            self.wait_web(web)
        for worker in new_workers:
            self.wait_worker(worker)
        return self

    def add_web(self, wait: bool = True, port: int | None = None, **extra) -> WebServer:
        """Start one more web process (on PORT if given)."""
        web = WebServer(self.env(**extra), self.log_dir, name=self._name("web"), port=port)
        web.args = procfile_command("web", web.env)
        ServerProcess.start(web)
        self.webs.append(web)
        if wait:
            self.wait_web(web)
        return web

    def wait_web(self, web: WebServer, timeout: float = 40) -> None:
        """Wait for /readyz 200."""
        wait_until(lambda: web.ready() or web.process.poll() is not None, timeout, 0.05, f"{web.name} ready")
        assert web.process.poll() is None, f"{web.name} exited:\n{web.log()[-3000:]}"

    def add_worker(self, wait: bool = True, **extra) -> ServerProcess:
        """Start one more Celery worker (one child process)."""
        name = self._name("worker")
        env = self.env(WORKER_CONCURRENCY="1", **extra)
        args = [*procfile_command("worker", env), "-n", f"{name}@%h"]
        worker = ServerProcess(args, env, name, self.log_dir).start()
        self.workers.append(worker)
        if wait:
            self.wait_worker(worker)
        return worker

    def wait_worker(self, worker: ServerProcess, timeout: float = 60) -> None:
        """Wait for the worker's ` ready.` line."""
        wait_until(
            lambda: " ready." in worker.log() or worker.process.poll() is not None, timeout, 0.1, f"{worker.name} ready"
        )
        assert worker.process.poll() is None, worker.log()[-3000:]

    def add_beat(self, **extra) -> ServerProcess:
        """Start one more Celery beat (RedBeat)."""
        name = self._name("beat")
        env = self.env(**extra)
        args = [
            *procfile_command("beat", env),
            "--pidfile",
            str(self.log_dir / f"{name}.pid"),
            "--schedule",
            str(self.log_dir / f"{name}.db"),
        ]
        beat = ServerProcess(args, env, name, self.log_dir).start()
        self.beats.append(beat)
        return beat

    def heal(self) -> list[str]:
        """Restart every process that died (a web on its port); return their names."""
        healed = []
        for group, start in (
            (self.webs, lambda dead: self.add_web(wait=False, port=dead.port)),
            (self.workers, lambda dead: self.add_worker(wait=False)),
            (self.beats, lambda dead: self.add_beat()),
        ):
            for dead in [p for p in group if not self.alive(p)]:
                group.remove(dead)
                healed.append(dead.name)
                start(dead)
        for web in self.webs:
            self.wait_web(web)
        for worker in self.workers:
            self.wait_worker(worker)
        return healed

    def alive(self, process: ServerProcess) -> bool:
        """True while PROCESS runs."""
        return process.process is not None and process.process.poll() is None

    def ready_codes(self) -> list[int | None]:
        """/readyz status of every live web process (None when it does not answer)."""
        codes = []
        for web in self.webs:
            if not self.alive(web):
                continue
            try:
                codes.append(requests.get(web.url + "/readyz", timeout=2).status_code)
            except requests.RequestException:
                codes.append(None)
        return codes

    def stop(self) -> None:
        """Stop every process by PID (all signalled at once, then waited for), then Redis and its folder."""
        processes = [p for p in [*self.beats, *self.workers, *self.webs, self.exchange] if self.alive(p)]
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            process.stop()  # waits; SIGKILLs the group if it does not exit in time
        self.redis.cleanup()


def rss_mb(pid: int) -> float:
    """Resident memory of PID in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


class TlsRedis(EmbeddedRedis):
    """A redis-server answering only TLS (self-signed certificate made with the openssl CLI)."""

    def __init__(self):
        """Make the certificate; the plain port is disabled."""
        super().__init__(persist=True)
        self.tls_port = free_port()
        self.cert, self.key = make_self_signed_cert(Path(self.dir))
        self.extra_args = (
            "--tls-port",
            str(self.tls_port),
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-cert-file",
            str(self.cert),
            "--tls-auth-clients",
            "no",
        )

    @property
    def url(self) -> str:
        """rediss:// URL that accepts the self-signed certificate, as on Heroku."""
        return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_cert_reqs=none"

    def start(self, timeout: float = 10.0) -> TlsRedis:
        """Start with the plain port off, then wait for a TLS PING."""
        args = [
            self.binary,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
            "--appendonly",
            "yes",
            "--save",
            "",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = make_redis(self.url, socket_connect_timeout=0.5, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server (TLS) exited with {self.process.returncode}; see {self.dir}/redis.log"
                )
            try:
                if client.ping():
                    return self
            except Exception:  # noqa: BLE001 - not up yet: any connect or handshake error
                time.sleep(0.05)
        raise RuntimeError(f"TLS redis-server on port {self.tls_port} did not answer within {timeout}s")


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl CLI is needed for the TLS scenario")
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def wipe_redis_data(redis: EmbeddedRedis) -> None:
    """Remove a stopped server's AOF/RDB files, so its next start is empty (a restart without its data)."""
    assert redis.process is None, "stop the server first"
    for entry in Path(redis.dir).iterdir():
        if entry.name.startswith(("appendonly", "dump")):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
