"""Lua scripts run by SHA in pipelines (docs/architecture.md, "Charts and outcomes"): one round trip per batch of
commands, the scripts loaded again when Redis lost them (a restart)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

Command = tuple[Any, ...]  # (pipeline method name, *its arguments)
Arg = str | int | float


@dataclass(frozen=True)
class LuaScript:
    """A script's source and SHA; command() makes the EVALSHA command run by run_commands."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        """Hash the source once."""
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def command(self, keys: Sequence[str], args: Iterable[Arg]) -> Command:
        """The EVALSHA command of this script on KEYS and ARGS, in the order its header documents."""
        return ("evalsha", self.sha, len(keys), *keys, *args)


def run_commands(client: redis.Redis, commands: Sequence[Command], scripts: Iterable[LuaScript]) -> list[Any]:
    """COMMANDS in one round trip; SCRIPTS loaded again when Redis lost them (a restart), then the batch retried.

    By SHA: redis-py's Script in a pipeline asks SCRIPT EXISTS first, a second round trip per pair.
    """
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for name, *args in commands:
            getattr(pipe, name)(*args)
        try:
            return pipe.execute()
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            for script in scripts:
                client.script_load(script.source)
    return []
