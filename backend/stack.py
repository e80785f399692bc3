"""`make run`: the whole stack under honcho, with an embedded Redis when none answers."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from backend.embedded_redis import EmbeddedRedis, is_reachable
from backend.redis_client import redact_url
from backend.settings import ConfigError, Settings

log = logging.getLogger("quantum_signals.stack")
ROOT = Path(__file__).resolve().parent.parent

# The offline demo: a simulated market with fast bars so signals show within a minute.
DEMO_DEFAULTS = {
    "MARKET_SOURCE": "simulated",
    "TIMEFRAME": "5s",
    "SCAN_INTERVAL": "5",
    # Eight symbols × four strategies: on the simulated feed some bar fires at least every ~7 bars.
    "SYMBOLS": "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT,ADAUSDT,DOGEUSDT,AVAXUSDT",
    "STRATEGIES": "sma_cross:fast=9,slow=21;ema_cross:fast=9,slow=21;macd:fast=12,slow=26,signal=9;"
    "rsi:period=14,lower=30,upper=70",
}
FLOWER_USER = "admin"


def stack_env(base: dict[str, str]) -> dict[str, str]:
    """The environment of every process: demo defaults under what the user set."""
    env = {**DEMO_DEFAULTS, **base}
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def flower_auth(env: dict[str, str]) -> str | None:
    """Give Flower basic auth in ENV (generated unless set); return the generated credentials, else None."""
    if env.pop("FLOWER_UNAUTHENTICATED_API", None) is not None:
        # Unauthenticated, Flower answers any origin (CORS *) without XSRF checks: any web page could run tasks.
        log.warning("ignoring FLOWER_UNAUTHENTICATED_API: Flower always requires FLOWER_BASIC_AUTH under make run")
    if env.get("FLOWER_BASIC_AUTH", "").strip():
        return None
    env["FLOWER_BASIC_AUTH"] = f"{FLOWER_USER}:{secrets.token_urlsafe(16)}"
    return env["FLOWER_BASIC_AUTH"]


def main(argv: list[str] | None = None) -> int:
    """Start Redis if needed, then honcho with the Procfile; stop Redis on the way out."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stack: %(message)s")
    env = stack_env(dict(os.environ))
    generated = flower_auth(env)
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    embedded = None
    if not is_reachable(settings.redis_url):
        embedded = EmbeddedRedis(binary=None).start()
        env["REDIS_URL"] = embedded.url
        log.info(
            "no Redis answered at %s: started an embedded redis-server at %s (pid %d) for every process",
            redact_url(settings.redis_url),
            redact_url(embedded.url),
            embedded.pid,
        )
    else:
        log.info("using Redis at %s", redact_url(settings.redis_url))
    log.info("dashboard: http://127.0.0.1:%d/  (Ctrl-C stops everything)", settings.port)
    flower_url = f"http://{env.get('FLOWER_ADDRESS', '127.0.0.1')}:{env.get('FLOWER_PORT', '5555')}/"
    if generated:
        user, _, password = generated.partition(":")
        log.info(
            "flower: %s  user %s, password %s (generated for this run; set FLOWER_BASIC_AUTH to choose)",
            flower_url,
            user,
            password,
        )
    else:
        log.info("flower: %s  (credentials from FLOWER_BASIC_AUTH)", flower_url)
    command = [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile"), *(argv or [])]
    # SIGTERM must unwind like Ctrl-C, or the embedded Redis would outlive the stack.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    honcho = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        return honcho.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if honcho.poll() is None:
            honcho.terminate()
            try:
                honcho.wait(20)
            except subprocess.TimeoutExpired:
                honcho.kill()
        if embedded:
            embedded.cleanup()
            log.info("stopped the embedded redis-server")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
