"""backend/destinations.py: destinations and their errors, filters, the message, signatures, dead letters."""

from __future__ import annotations

import dataclasses
import time

import pytest

from backend import destinations
from backend.settings import ConfigError, Settings
from backend.signal_schema import NOTIFY_RESEND_KEY

SIGNAL = {
    "seq": 42,
    "epoch": "e1",
    "type": "BUY",
    "price": 60012.5,
    "symbol": "BTCUSDT",
    "timeframe": "1m",
    "strategy": "sma_cross:fast=9,slow=21",
    "bar_time": "2026-11-25T16:42:00Z",
    "reason": "SMA(9) crossed above SMA(21)",
}


def settings(**changes) -> Settings:
    """The defaults with CHANGES."""
    return dataclasses.replace(Settings(), **changes)


def test_urls_and_config_file_are_merged(tmp_path):
    path = tmp_path / "destinations.toml"
    path.write_text(
        '[[destination]]\nurl = "tgram://123456789:abcdefgh/456"\nsymbols = ["ethusdt"]\ntypes = ["sell"]\n'
    )

    found = destinations.load_destinations(
        settings(
            notify_urls=("https://hooks.example.com/secret-path", "json://127.0.0.1:9/x"),
            notify_config=str(path),
            notify_webhook_secret="s",
        )
    )

    assert [d.kind for d in found] == ["webhook", "apprise", "apprise"]
    assert found[0].label == "https://hooks.example.com/***"
    assert "abcdefgh" not in found[2].label and found[2].label.startswith("tgram://")
    assert found[2].symbols == {"ETHUSDT"} and found[2].types == {"SELL"}
    assert "secret-path" not in repr(found[0])


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"notify_urls": ("nope://token@x",)}, "NOTIFY_URLS=nope://***: not a URL Apprise can send to"),
        ({"notify_urls": ("no-scheme",)}, "NOTIFY_URLS=<not a URL>"),
        ({"notify_urls": ("https://",)}, "a webhook URL needs a host"),
        ({"notify_urls": ("https://h/x",)}, "NOTIFY_WEBHOOK_SECRET is empty"),
        (
            {"notify_urls": ("json://h/x", "json://h/x")},
            "listed twice",
        ),
        (
            {"notify_config": "/nonexistent/destinations.toml"},
            "NOTIFY_CONFIG='/nonexistent/destinations.toml': cannot read it",
        ),
    ],
)
def test_bad_destinations_are_config_errors_naming_the_variable(changes, words):
    with pytest.raises(ConfigError) as error:
        destinations.load_destinations(settings(**changes))
    assert words in str(error.value)
    assert "token" not in str(error.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[[destination]\n", "not valid TOML"),
        ('[[destination]]\nurl = "json://h/x"\ncolour = "red"\n', "unknown keys ['colour']"),
        ('[[destination]]\nsymbols = ["BTCUSDT"]\n', 'needs url = "…"'),
        ('[[destination]]\nurl = "json://h/x"\nsymbols = "BTCUSDT"\n', "symbols must be a list of strings"),
        ('[[destination]]\nurl = "json://h/x"\ntypes = ["HOLD"]\n', "types ['HOLD'] unknown"),
        ('url = "json://h/x"\n', "[[destination]] tables only"),
    ],
)
def test_a_bad_config_file_names_notify_config(tmp_path, text, words):
    path = tmp_path / "destinations.toml"
    path.write_text(text)

    with pytest.raises(ConfigError) as error:
        destinations.load_destinations(settings(notify_config=str(path)))
    assert str(error.value).startswith(f"NOTIFY_CONFIG={str(path)!r}") and words in str(error.value)


def test_filters_match_symbol_type_and_strategy_name_or_spec():
    def dest(**filters):
        return destinations.parse_destination("json://h/x", "test", filters)

    assert dest().matches(SIGNAL)
    assert dest(symbols=["btcusdt"], types=["BUY"], strategies=["sma_cross"]).matches(SIGNAL)
    assert dest(strategies=["sma_cross:fast=9,slow=21"]).matches(SIGNAL)
    assert not dest(symbols=["ETHUSDT"]).matches(SIGNAL)
    assert not dest(types=["SELL"]).matches(SIGNAL)
    assert not dest(strategies=["rsi"]).matches(SIGNAL)


def test_the_message_is_short_and_human():
    assert (
        destinations.message(SIGNAL)
        == "BUY BTCUSDT @ 60012.5 · sma_cross 9/21 · 1m · 16:42 UTC\nSMA(9) crossed above SMA(21)"
    )
    assert destinations.message({"type": "SELL", "price": 61000}) == "SELL @ 61000"


def test_signatures_verify_and_refuse_tampering_and_old_timestamps():
    body = b'{"seq":1}'
    header = destinations.signature_header("secret", body)

    assert destinations.verify_signature("secret", body, header)
    assert not destinations.verify_signature("secret", b'{"seq":2}', header)
    assert not destinations.verify_signature("other", body, header)
    assert not destinations.verify_signature(
        "secret", body, destinations.signature_header("secret", body, int(time.time()) - 3600)
    )
    assert not destinations.verify_signature("secret", body, "garbage")


def test_dead_letters_are_kept_counted_and_put_back(redis_client):
    first = destinations.add_dead_letter(redis_client, "d1", "webhook", "http://h/***", '{"seq":1}', "HTTP 400", 1)
    destinations.add_dead_letter(redis_client, "d2", "apprise", "json://h/x", '{"seq":2}', "apprise failure", 5)

    assert [letter["id"] for letter in destinations.dead_letters(redis_client)][0] == first
    assert destinations.stats(redis_client) == {("webhook", "dead"): 1, ("apprise", "dead"): 1}
    assert destinations.resend(redis_client, {first}) == [first]
    assert [letter["dest"] for letter in destinations.dead_letters(redis_client)] == ["d2"]
    assert redis_client.lrange(NOTIFY_RESEND_KEY, 0, -1) == ['{"dest": "d1", "sig": "{\\"seq\\":1}"}']


def test_notify_settings_are_read_and_checked():
    parsed = Settings.from_env(
        {"NOTIFY_URLS": " json://h/x\n https://h/y ", "NOTIFY_WEBHOOK_SECRET": "s3cret", "NOTIFY_MAX_AGE_S": "60"}
    )

    assert parsed.notify_urls == ("json://h/x", "https://h/y") and parsed.notify_max_age_s == 60
    assert "s3cret" not in repr(parsed) and "json://h/x" not in repr(parsed)
    assert Settings().notify_max_age_s == 3600 and Settings().notify_timeout_s == 10
    with pytest.raises(ConfigError, match="NOTIFY_MAX_AGE_S"):
        Settings.from_env({"NOTIFY_MAX_AGE_S": "soon"})
