"""The whole product as separate processes on a test-owned Redis: webs, workers, beats, a loopback exchange."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import requests

from backend.embedded_redis import EmbeddedRedis
from backend.redis_client import make_redis
from harness.exchange import ExchangeProcess
from harness.processes import CeleryProcess, ServerProcess, WebServer
from harness.redis import TlsRedis
from tests.chaos.exchange import STRATEGY

BAR_MS = 1000  # TIMEFRAME=1s: with the zigzag market every symbol fires once a second


def symbols(count: int) -> list[str]:
    """COUNT distinct symbol names."""
    return [f"SYM{i:03d}USDT" for i in range(count)]


class Exchange(ExchangeProcess):
    """`python -m tests.chaos.exchange` (consistent bars, ExchangeServer's faults) as its own process."""

    def __init__(self, log_dir: Path):
        """Pick the port; start() runs it."""
        super().__init__(log_dir, module="tests.chaos.exchange")

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
        self.workers: list[CeleryProcess] = []
        self.beats: list[CeleryProcess] = []
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
        # The webs alternate the broadcast fast path on and off (FAST_BROADCAST), so every scenario checks both
        # ways, and exactly-once across web processes whose delivery paths differ.
        new_webs = [self.add_web(wait=False, **self._web_mode(n)) for n in range(webs)]
        new_workers = [self.add_worker(wait=False) for _ in range(workers)]
        for _ in range(beats):
            self.add_beat()
        for web in new_webs:
            self.wait_web(web)
        for worker in new_workers:
            self.wait_worker(worker)
        return self

    def _web_mode(self, n: int) -> dict[str, str]:
        """FAST_BROADCAST of the Nth web: 1, 0, 1, … unless the stack's env sets it."""
        return {} if "FAST_BROADCAST" in self.extra_env else {"FAST_BROADCAST": "10"[n % 2]}

    @staticmethod
    def _mode_of(web: WebServer) -> dict[str, str]:
        """The FAST_BROADCAST WEB was started with, to restart it the same way."""
        return {key: web.env[key] for key in ("FAST_BROADCAST",) if key in web.env}

    def add_web(self, wait: bool = True, port: int | None = None, **extra) -> WebServer:
        """Start one more web process (on PORT if given)."""
        web = WebServer(self.env(**extra), self.log_dir, name=self._name("web"), port=port)
        web.start(wait=False)
        self.webs.append(web)
        if wait:
            self.wait_web(web)
        return web

    def wait_web(self, web: WebServer, timeout: float = 40) -> None:
        """Wait for /readyz 200."""
        web.wait_ready(timeout)

    def add_worker(self, wait: bool = True, **extra) -> CeleryProcess:
        """Start one more Celery worker (one child process)."""
        worker = CeleryProcess("worker", self.env(**extra), self._name("worker"), self.log_dir).start()
        self.workers.append(worker)
        if wait:
            self.wait_worker(worker)
        return worker

    def wait_worker(self, worker: CeleryProcess, timeout: float = 60) -> None:
        """Wait until the worker answers a control ping."""
        worker.wait_ready(timeout)

    def add_beat(self, **extra) -> CeleryProcess:
        """Start one more Celery beat (RedBeat)."""
        beat = CeleryProcess("beat", self.env(**extra), self._name("beat"), self.log_dir).start()
        self.beats.append(beat)
        return beat

    def heal(self) -> list[str]:
        """Restart every process that died (a web on its port); return their names."""
        healed = []
        for group, start in (
            (self.webs, lambda dead: self.add_web(wait=False, port=dead.port, **self._mode_of(dead))),
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
        return process.alive()

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
        processes = [*self.beats, *self.workers, *self.webs, self.exchange]
        for process in processes:
            if self.alive(process):
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in processes:
            process.stop()  # waits (SIGKILLs the group if it does not exit in time) and closes what it holds
        self.redis.cleanup()


def rss_mb(pid: int) -> float:
    """Resident memory of PID in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20
