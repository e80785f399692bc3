"""Bots as separate processes: one killed while it handles a signal, and the README's bot run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.polling import wait_until
from harness.processes import ROOT
from quantum_signals_client import Cursor, CursorFile
from tests.clients_python.conftest import publish_many

README = ROOT / "clients" / "python" / "README.md"
SLOW_BOT = Path(__file__).with_name("slow_bot.py")


class BotProcess:
    """A bot script run as a child, its output in a file."""

    def __init__(self, args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None):
        """Start it."""
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def output(self) -> str:
        """What it printed so far."""
        return self.log.read_text()

    def received(self) -> list[int]:
        """The seqs it printed as received."""
        return [int(seq) for seq in re.findall(r"^received (\d+)$", self.output(), re.M)]

    def stop(self) -> None:
        """SIGKILL it (if still running) and wait."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def bots():
    """Factory: BotProcess children, killed after the test."""
    started: list[BotProcess] = []

    def start(*args, **kwargs) -> BotProcess:
        bot = BotProcess(*args, **kwargs)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.stop()


def test_bot_killed_while_handling_a_signal_gets_it_again(signals_web, own_publisher, bots, tmp_path):
    cursor = tmp_path / "bot.cursor"
    bot = bots([str(SLOW_BOT), signals_web.url, str(cursor), "3"], tmp_path, tmp_path / "first.log")
    wait_until(cursor.exists, 20, message="the bot's first cursor (it joined the live stream)")
    sent = publish_many(own_publisher, 5)
    epoch = sent[0]["epoch"]
    wait_until(lambda: 3 in bot.received(), 20, message="the bot received seq 3")

    bot.stop()  # SIGKILL while it handles seq 3: 1 and 2 are finished, 3 is not
    assert bot.received() == [1, 2, 3]
    assert CursorFile(cursor).load() == Cursor(epoch, 2)

    again = bots([str(SLOW_BOT), signals_web.url, str(cursor), "0"], tmp_path, tmp_path / "second.log")
    wait_until(lambda: 5 in again.received(), 20, message="the restarted bot received seq 5")
    assert again.received() == [3, 4, 5]
    wait_until(lambda: CursorFile(cursor).load() == Cursor(epoch, 5), message="seq 5 finished (it asked for more)")


def test_readme_bot_runs_as_written(signals_web, own_publisher, bots, tmp_path):
    code = readme_bot()
    (tmp_path / "bot.py").write_text(code)
    env = {**os.environ, "SIGNALS_URL": signals_web.url, "BOT_STOP_AFTER": "3"}
    env.pop("SIGNALS_TOKEN", None)
    bot = bots(["bot.py"], tmp_path, tmp_path / "bot.log", env=env)
    wait_until((tmp_path / "bot.cursor").exists, 20, message="the README bot's cursor file")

    sent = publish_many(own_publisher, 4)

    wait_until(lambda: bot.process.poll() is not None, 20, message="the README bot to stop after 3 events")
    assert bot.process.returncode == 0, bot.output()
    assert bot.output().splitlines() == [f"{seq} BUY BTCUSDT {100 + seq - 1}" for seq in (1, 2, 3)]
    assert CursorFile(tmp_path / "bot.cursor").load() == Cursor(sent[0]["epoch"], 3)


def readme_bot() -> str:
    """The Python block under the README's "A bot in ten lines" heading."""
    text = README.read_text()
    section = text[text.index("## A bot in ten lines") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no ```python block under 'A bot in ten lines' in {README}"
    return match.group(1)
