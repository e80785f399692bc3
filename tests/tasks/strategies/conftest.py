"""Price fixtures shared by the strategy tests."""

import numpy as np
import pytest


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
