"""The scoring rule, the tallies and OUTCOME_HORIZONS, as pure code."""

import pytest

from backend.outcomes import Tally, outcomes_at, score
from backend.settings import ConfigError, Settings


def test_a_buy_scores_the_rise_and_a_sell_the_fall():
    assert score("BUY", 100.0, 110.0) == pytest.approx(0.10)
    assert score("SELL", 100.0, 110.0) == pytest.approx(-0.10)
    assert score("SELL", 200.0, 150.0) == pytest.approx(0.25)


def test_only_horizons_whose_bar_has_closed_are_scored():
    close = [100.0, 101.0, 99.0, 98.0, 120.0]

    assert outcomes_at("BUY", close, 1, (1, 3, 5)) == {1: 99.0 / 101.0 - 1, 3: 120.0 / 101.0 - 1}
    assert outcomes_at("SELL", close, 4, (1,)) == {}


def test_a_tally_gives_hit_rate_and_mean_and_nulls_when_empty():
    tally = Tally()
    assert tally.summary() == {"n": 0, "hit_rate": None, "mean_return": None}

    for r in (0.02, -0.01, 0.0, 0.03):
        tally.add(r)

    assert tally.summary() == {"n": 4, "hit_rate": 0.5, "mean_return": pytest.approx(0.01)}


def test_outcome_horizons_default_and_parse_sorted():
    assert Settings.from_env({}).outcome_horizons == (1, 5, 20)
    assert Settings.from_env({"OUTCOME_HORIZONS": " 20, 1,3 "}).outcome_horizons == (1, 3, 20)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1,five", "'five' is not a number of bars from 1 to 999"),
        ("0", "'0' is not a number of bars"),
        ("1000", "'1000' is not a number of bars"),
        ("1,,5", "'' is not a number of bars"),
        ("5,5", "lists 5 twice"),
        ("-1", "'-1' is not a number of bars"),
    ],
)
def test_bad_outcome_horizons_name_the_variable_and_the_fix(raw, reason):
    with pytest.raises(ConfigError, match="OUTCOME_HORIZONS") as caught:
        Settings.from_env({"OUTCOME_HORIZONS": raw})

    assert reason in str(caught.value) and "1,5,20" in str(caught.value)
