"""Whatever spec text an operator writes, the parser answers with a strategy or a StrategyError, nothing else."""

from hypothesis import example, given

from tasks.strategies import StrategyError, parse_strategies
from tests.fuzz_strategies import SPEC_TEXT


@given(SPEC_TEXT)
@example("cross:fast=EMA(9),slow=BBANDS(20,2,2).upperband;level:of=RSI(14),lower=30,upper=70")
@example("cross:fast=EMA((9)),slow=close")
@example("py:.:")
def test_a_spec_parses_to_a_canonical_strategy_or_a_strategy_error(text):
    try:
        strategies = parse_strategies(text)
    except StrategyError as error:
        assert str(error)
        return
    for strategy in strategies:
        assert parse_strategies(strategy.spec)[0].spec == strategy.spec
