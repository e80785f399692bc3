"""`quantum-signals`, the console command, run as an operator runs it (the venv's script, a real Redis):
publish through the intake's normalization, merged publishes, hostile input, tail, and the notify commands."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend import destinations, history
from backend.cli import MERGED_EXIT
from backend.signal_schema import signal_id, utc_iso
from harness.ports import free_port
from harness.processes import ROOT, ServerProcess

COMMAND = Path(sys.executable).parent / "quantum-signals"


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    """`quantum-signals ARGS…` with ENV, from the project's directory."""
    assert COMMAND.exists(), f"{COMMAND} is missing: `make install` installs the project's console command"
    return subprocess.run([COMMAND, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def publish(env: dict, *args: str) -> subprocess.CompletedProcess:
    """`quantum-signals signals publish ARGS…`."""
    return run(env, "signals", "publish", *args)


def test_publish_shares_the_intake_normalization(base_env, redis_client):
    done = publish(base_env, "--type", "sell", "--price", "2", "--symbol", "ethusdt", "--json", '{"id": "m1"}')
    refused = publish(base_env, "--type", "buy", "--price", "2", "--json", '{"qty": 1}')

    assert done.returncode == 0, done.stderr
    signal = json.loads(done.stdout)
    assert (signal["type"], signal["symbol"], signal["id"], signal["source"]) == ("SELL", "ETHUSDT", "ext:m1", "manual")
    assert refused.returncode == 1 and "unknown fields 'qty'" in refused.stderr
    assert [s["id"] for s in history.read_range(redis_client, 0)] == ["ext:m1"]


def test_the_commands_defaults_never_make_an_id(base_env, redis_client):
    # Same price, same second: without an id given, two signals, each with an id of its own.
    first, second = (publish(base_env, "--type", "BUY", "--price", "1") for _ in range(2))
    # Four of the five id fields given, the symbol left to the command's default: still no derived id.
    four = '{"strategy": "tv", "timeframe": "1h", "bar_time": "2026-11-25T16:00:00Z"}'
    third, fourth = (publish(base_env, "--type", "BUY", "--price", "1", "--json", four) for _ in range(2))

    assert [p.returncode for p in (first, second, third, fourth)] == [0, 0, 0, 0], second.stderr
    signals = [json.loads(p.stdout) for p in (first, second, third, fourth)]
    assert [s["seq"] for s in signals] == [1, 2, 3, 4]
    assert len({s["id"] for s in signals}) == 4 and all(s["id"].startswith("ext:") for s in signals)
    assert (signals[0]["symbol"], signals[0]["strategy"], signals[0]["timeframe"]) == ("BTCUSDT", "manual", "manual")
    assert signals[0]["bar_time"].endswith("Z") and signals[2]["symbol"] == "BTCUSDT"


@pytest.mark.parametrize(
    "given",
    [
        ["--json", '{"id": "order-9"}'],
        ["--symbol", "ETHUSDT", "--json", '{"strategy": "tv", "timeframe": "1h", "bar_time": "2026-11-25T16:00:00Z"}'],
    ],
    ids=["same id", "same five fields"],
)
def test_a_publish_merged_into_an_earlier_one_says_so_and_exits_3(base_env, redis_client, given):
    first = publish(base_env, "--type", "SELL", "--price", "5", *given)
    again = publish(base_env, "--type", "SELL", "--price", "6", *given)

    assert first.returncode == 0, first.stderr
    assert again.returncode == MERGED_EXIT == 3
    assert again.stderr.startswith("already published as seq 1 (id ext:"), again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)
    assert [s["price"] for s in history.read_range(redis_client, 0)] == [5]


def scan_signal(bar_ms: int) -> dict:
    """The scan's SELL signal of the 1m ETHUSDT bar opened at BAR_MS (tasks/scanner.make_signal's fields)."""
    return {
        "id": signal_id("ETHUSDT", "rsi", "1m", bar_ms, "SELL"),
        **{"type": "SELL", "price": 3000.0, "symbol": "ETHUSDT", "timeframe": "1m", "strategy": "rsi"},
        **{"bar_time": utc_iso(bar_ms), "source": "csv"},
    }


def test_the_command_cannot_take_the_scans_next_signals(base_env, publisher):
    forming = int(time.time()) // 60 * 60_000  # the bar still open: the scan publishes it next, then the following
    following = forming + 60_000
    five = {key: scan_signal(forming)[key] for key in ("symbol", "timeframe", "strategy", "bar_time")}

    by_id = publish(
        base_env, "--type", "SELL", "--price", "1", "--json", json.dumps({"id": scan_signal(following)["id"]})
    )
    by_fields = publish(base_env, "--type", "SELL", "--price", "2", "--json", json.dumps(five))
    real = [publisher.publish_if_new(scan_signal(bar)) for bar in (forming, following)]  # as tasks/scanner.py does

    assert (by_id.returncode, by_fields.returncode) == (0, 0), by_id.stderr + by_fields.stderr
    assert None not in real, "a scan signal was dropped as a duplicate of the command's"
    assert [(s["seq"], s["id"]) for s in real] == [(3, scan_signal(forming)["id"]), (4, scan_signal(following)["id"])]
    assert not {json.loads(by_id.stdout)["id"], json.loads(by_fields.stdout)["id"]} & {s["id"] for s in real}


HUGE_SYMBOL = "A" * 100_000
DEEP = "[" * 50_000


@pytest.mark.parametrize(
    "args, error",
    [
        (["--price", "1", "--json", "{not json"], "--json is not JSON"),
        (["--price", "1", "--json", "[1, 2]"], "--json must be a JSON object, got list"),
        (["--price", "1", "--json", DEEP], "--json JSON is nested too deeply"),
        (["--price", "1", "--json", json.dumps({"reason": "x" * 100_000})], "exceeds MAX_SIGNAL_BYTES=65536"),
        (["--price", "1", "--json", json.dumps({"reason": "x" * 65_300})], "exceeds MAX_SIGNAL_BYTES=65536"),
        (["--price", "1", "--json", '{"price": NaN}'], "--json is not JSON: 'NaN is not valid JSON'"),
        (["--price", "abc"], 'signal "price" must be a number or a numeric string'),
        (["--price", "nan"], 'signal "price" must be a number or a numeric string'),
        (["--price", "-5"], 'signal "price" must be finite and > 0'),
        (["--price", "1e999"], 'signal "price" must be finite and > 0'),
        (["--price", "9" * 100_000], 'signal "price" must be a number or a numeric string, got '),
        (["--price", "1", "--symbol", HUGE_SYMBOL], 'signal "symbol" must be a symbol such as BTCUSDT'),
        (["--price", "1", "--json", '{"bar_time": "2099-01-01T00:00:00Z"}'], "ahead of this server's clock"),
    ],
    ids=[
        "not json", "not an object", "deep", "huge json", "huge once stored", "nan json", "price text", "price nan",
        "price negative", "price infinite", "price huge", "symbol huge", "future bar_time",
    ],
)  # fmt: skip
def test_hostile_input_is_one_clear_line_and_nothing_is_published(base_env, redis_client, args, error):
    done = publish(base_env, "--type", "BUY", *args)

    assert done.returncode == 1, (done.returncode, done.stderr[:300])
    assert len(done.stderr.strip().splitlines()) == 1 and len(done.stderr) < 400, done.stderr[:500]
    assert error in done.stderr, done.stderr
    assert done.stdout == ""
    assert history.read_range(redis_client, 0) == []


def test_a_bad_setting_or_no_redis_is_one_line(base_env):
    bad = publish({**base_env, "TIMEFRAME": "7x"}, "--type", "BUY", "--price", "1")
    no_redis = publish({**base_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "--type", "BUY", "--price", "1")

    assert bad.returncode == 1 and bad.stderr.startswith("configuration error: TIMEFRAME='7x'"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert no_redis.returncode == 1 and "Redis unavailable (ConnectionError" in no_redis.stderr, no_redis.stderr
    assert len(no_redis.stderr.strip().splitlines()) == 1


def test_tail_prints_history_then_live_signals_through_the_web(base_env, web, publisher, tmp_path):
    before = publisher.publish_signal({"type": "BUY", "price": 1, "id": "t1"})
    command = [str(COMMAND), "signals", "tail", "--since", "0", "--url", web.url]
    tail = ServerProcess(command, base_env, "tail", tmp_path).start()
    try:
        tail.wait_for(lambda: tail.log().count("\n") >= 1, 15, "the retained signal")
        # The client joined live right after its replay: a signal published now is printed live, once.
        after = publisher.publish_signal({"type": "SELL", "price": 2, "id": "t2"})
        tail.wait_for(lambda: tail.log().count("\n") >= 2, 15, "the live signal")
    finally:
        tail.stop()

    assert [json.loads(line) for line in tail.log().splitlines()] == [before, after]


def test_tail_sends_the_token_and_names_a_refusal(base_env, start_web):
    web = start_web(SIGNALS_AUTH_TOKEN="s3cret")
    env = {**base_env, "SIGNALS_AUTH_TOKEN": "s3cret"}
    wrong = run(env, "signals", "tail", "--url", web.url, "--token", "wrong")

    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.startswith("signals tail: ") and len(wrong.stderr.strip().splitlines()) == 1


def test_tail_without_the_bot_client_says_how_to_install_it(base_env):
    hide = "import sys; sys.modules['quantum_signals_client'] = None; from backend.cli import main; main()"
    missing = subprocess.run(
        [sys.executable, "-c", hide, "signals", "tail"], cwd=ROOT, env=base_env, capture_output=True, text=True
    )

    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        "the bot client quantum_signals_client is not installed: run `make install` "
        "(or pip install -e ./clients/python)\n"
    )


def test_notify_commands_list_and_resend_dead_letters(base_env, redis_client):
    empty = run(base_env, "notify", "dead")
    destinations.add_dead_letter(redis_client, "ab12cd34ef56", "webhook", "https://hooks.example", "{}", "HTTP 400", 3)
    listed = run(base_env, "notify", "dead")
    (letter,) = destinations.dead_letters(redis_client)
    nothing = run(base_env, "notify", "resend")
    unknown = run(base_env, "notify", "resend", "0-1")
    resent = run(base_env, "notify", "resend", "--all")

    assert (empty.returncode, empty.stdout) == (0, "no dead letters\n")
    assert listed.returncode == 0 and letter["id"] in listed.stdout and "HTTP 400" in listed.stdout
    assert nothing.returncode == 2 and "give dead-letter ids (see `quantum-signals notify dead`)" in nothing.stderr
    assert unknown.returncode == 1 and "no dead letter 0-1" in unknown.stderr
    assert resent.returncode == 0 and resent.stdout == "queued 1 dead letter(s) for delivery again\n"
    assert destinations.dead_letters(redis_client) == []
