"""Price fixtures shared by the strategy tests."""

import numpy as np
import pytest

from tasks.market.candles import Candles


def random_walk(bars: int, seed: int) -> np.ndarray:
    """Closes of a seeded geometric random walk starting at 100."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))


@pytest.fixture(scope="session")
def closes() -> np.ndarray:
    """A few thousand bars: long enough for every indicator to settle and cross often."""
    return random_walk(3000, seed=20261125)


@pytest.fixture(scope="session")
def short_closes() -> np.ndarray:
    """Few enough bars to replay one at a time."""
    return random_walk(400, seed=7)


def ohlcv(close: np.ndarray, seed: int = 3) -> Candles:
    """Candles around CLOSE: open at the previous close, high and low a random bit beyond, random volume."""
    rng = np.random.default_rng(seed)
    open_ = np.r_[close[0], close[:-1]]
    spread = rng.uniform(0.0, 0.01, len(close))
    times = 1_764_000_000_000 + np.arange(len(close)) * 60_000
    return Candles(
        times,
        open_,
        np.maximum(open_, close) * (1 + spread),
        np.minimum(open_, close) * (1 - spread),
        close,
        rng.uniform(10.0, 100.0, len(close)),
        times + 59_999,
    )


@pytest.fixture(scope="session")
def candles(closes) -> Candles:
    """OHLCV bars around the closes fixture."""
    return ohlcv(closes)
