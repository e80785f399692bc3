"""`quantum-signals`, the project's console command: publish a signal by hand, tail the live channel, and
list or resend the dead-lettered notifications (docs/architecture.md, "CLI").

It needs only the settings, Redis and the backend modules: no web app. `signals tail` follows the web process
through the bot client (clients/python, installed by `make install`), as any bot would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
import redis

from backend import destinations
from backend.intake import normalize_signal
from backend.publisher import Publisher
from backend.redis_client import make_redis
from backend.settings import ConfigError, Settings, load_settings
from backend.signal_schema import InvalidSignal, decode_json, utc_iso

DEFAULT_SYMBOL = "BTCUSDT"
MERGED_EXIT = 3  # `signals publish`: the signal's id was published before; nothing new was published


def _settings() -> Settings:
    """This process's settings; a bad one ends the command with one line naming it."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None


class _Commands(click.Group):
    """The command group whose Redis failures end the command in one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a Redis failure becomes a one-line error."""
        try:
            return super().invoke(ctx)
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis unavailable ({type(exc).__name__}: {exc}); check REDIS_URL") from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Quantum Signals from the command line."""


@main.group("signals")
def signals_cli() -> None:
    """Publish or watch trading signals."""


@signals_cli.command("publish")
@click.option("--type", "kind", type=click.Choice(["BUY", "SELL"], case_sensitive=False), required=True)
@click.option("--price", required=True, help="A number, e.g. 61000.5.")
@click.option("--symbol", default=None, help=f"[default: {DEFAULT_SYMBOL}]")
@click.option("--json", "extra", default=None, help="More fields as a JSON object (those of POST /api/signals).")
def publish_command(kind: str, price: str, symbol: str | None, extra: str | None) -> None:
    """Publish one signal through the project's publisher and print the stored signal.

    Exit status 0 for a new signal, 3 when its id was published before (the earlier signal is
    printed, and the seq it was published as goes to stderr), 1 for a refused signal, 2 for a bad option.
    """
    settings = _settings()
    body = {"type": kind, "price": price, **({"symbol": symbol} if symbol else {}), **_json_fields(extra, settings)}
    # Shown on the signal, but never part of its id: an id comes only from what the caller gave.
    defaults = {
        "symbol": DEFAULT_SYMBOL,
        "timeframe": "manual",
        "strategy": "manual",
        "bar_time": utc_iso(int(time.time() * 1000), millis=True),
    }
    try:
        # The HTTP intake's normalization: one way in for outside signals.
        signal = normalize_signal(body, default_source="manual", defaults=defaults)
        stored, created = Publisher.from_settings(settings, make_redis(settings.redis_url)).publish(signal)
    except InvalidSignal as exc:
        raise click.ClickException(f"not a valid signal: {exc}") from None
    click.echo(json.dumps(stored))
    if not created:
        click.echo(f"already published as seq {stored['seq']} (id {stored.get('id')}): nothing new published", err=True)
        raise SystemExit(MERGED_EXIT)


def _json_fields(extra: str | None, settings: Settings) -> dict[str, Any]:
    """The fields of --json EXTRA, a JSON object no larger than a signal may be."""
    if extra is None:
        return {}
    raw = extra.encode("utf-8", "surrogatepass")
    if len(raw) > settings.max_signal_bytes:
        raise click.ClickException(f"--json of {len(raw)} bytes exceeds MAX_SIGNAL_BYTES={settings.max_signal_bytes}")
    try:
        fields = decode_json(raw, "--json")
    except InvalidSignal as exc:
        raise click.ClickException(str(exc)) from None
    if not isinstance(fields, dict):
        raise click.ClickException(f"--json must be a JSON object, got {type(fields).__name__}")
    return fields


@signals_cli.command("tail")
@click.option("--since", type=int, default=None, help="First print retained signals with seq > SINCE.")
@click.option("--url", default=None, help="The web process to follow [default: http://127.0.0.1:$PORT].")
@click.option("--token", default=None, help="A SIGNALS_AUTH_TOKEN token [default: the first of SIGNALS_AUTH_TOKEN].")
def tail_command(since: int | None, url: str | None, token: str | None) -> None:
    """Print signals as the web process relays them, one JSON object per line (through the bot client)."""
    try:
        from quantum_signals_client import Client, ClientError, Resync, Signal
    except ImportError:
        raise SystemExit(
            "the bot client quantum_signals_client is not installed: run `make install` "
            "(or pip install -e ./clients/python)"
        ) from None
    settings = _settings()
    url = url or f"http://127.0.0.1:{settings.port}"
    token = token or (settings.auth_tokens[0] if settings.auth_tokens else None)
    if since is not None and since < 0:
        raise click.BadParameter(f"--since must be a seq (0 or more), not {since}", param_hint="--since")
    # No cursor file: a tail starts where --since says (or live), each run afresh.
    try:
        with Client(url, token=token, cursor=None, since=since) as client:
            for event in client:
                if isinstance(event, Signal):
                    click.echo(json.dumps(event.raw))
                elif isinstance(event, Resync):
                    click.echo(f"# history restarted: epoch {event.epoch}", err=True)
    except ClientError as exc:
        raise SystemExit(f"signals tail: {exc}") from None
    except KeyboardInterrupt:
        pass


@main.group("notify")
def notify_cli() -> None:
    """Notifications that gave up: list them, send them again."""


@notify_cli.command("dead")
def dead_command() -> None:
    """List the dead-lettered notifications, oldest first, one per line."""
    letters = destinations.dead_letters(make_redis(_settings().redis_url))
    if not letters:
        click.echo("no dead letters")
    for letter in letters:
        try:
            signal = json.loads(letter.get("sig", ""))
            what = f"{signal.get('epoch')}:{signal.get('seq')} {signal.get('type')} {signal.get('symbol', '')}".strip()
        except ValueError:
            what = "?"
        click.echo(
            f"{letter['id']}  {letter.get('at')}  {letter.get('kind')} {letter.get('target')}  {what}  "
            f"attempts={letter.get('attempts')}  {letter.get('error')}"
        )


@notify_cli.command("resend")
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@click.argument("ids", nargs=-1)
def resend_command(everything: bool, ids: tuple[str, ...]) -> None:
    """Send dead letters (IDS as `quantum-signals notify dead` lists them, or --all) again through the notify queue."""
    if not everything and not ids:
        raise click.UsageError("give dead-letter ids (see `quantum-signals notify dead`) or --all")
    # Back on the durable list the dispatcher drains: this command never imports or queues Celery tasks itself.
    moved = destinations.resend(make_redis(_settings().redis_url), None if everything else set(ids))
    click.echo(f"queued {len(moved)} dead letter(s) for delivery again")
    missing = sorted(set(ids) - set(moved))
    if missing:
        raise click.ClickException(f"no dead letter {', '.join(missing)}")
