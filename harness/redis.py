"""A test's Redis (plain: backend.embedded_redis.EmbeddedRedis; TLS-only: TlsRedis) and what writes to it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from backend.embedded_redis import EmbeddedRedis
from backend.publisher import Publisher
from backend.redis_client import make_redis
from backend.settings import Settings
from harness.ports import free_port


def make_publisher(client: redis.Redis, settings: Settings | None = None) -> Publisher:
    """The project's publisher on CLIENT, configured as a process with SETTINGS (default: the defaults) builds it."""
    return Publisher.from_settings(settings or Settings(), client)


def redis_cli_publish(server: EmbeddedRedis, payload: str, channel: str = "quantum_signals") -> None:
    """PUBLISH with the real redis-cli, as an operator or an outside publisher would."""
    out = subprocess.run(
        ["redis-cli", "-p", str(server.port), "PUBLISH", channel, payload], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0, out.stderr


class TlsRedis(EmbeddedRedis):
    """A redis-server answering only TLS (self-signed certificate made with the openssl CLI)."""

    def __init__(self):
        """Make the certificate; the TLS port is added to EmbeddedRedis's command line."""
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
        """EmbeddedRedis's start (it waits on the plain port), then the plain port closed over TLS."""
        super().start(timeout)
        client = make_redis(self.url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            # Redis 7 closes a listener when its port is set to 0; from here on only TLS answers.
            client.config_set("port", 0)
        finally:
            client.close()
        return self


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl CLI is needed for a TLS Redis")
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


def wipe_redis_data(server: EmbeddedRedis) -> None:
    """Remove a stopped server's AOF/RDB files, so its next start is empty (a restart without its data)."""
    assert server.process is None, "stop the server first"
    for entry in Path(server.dir).iterdir():
        if entry.name.startswith(("appendonly", "dump")):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
