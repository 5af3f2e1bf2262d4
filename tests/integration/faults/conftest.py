"""Fixtures of the fault tests."""

from __future__ import annotations

import os
import random

import pytest


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("CLUEBUS_FAULT_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"\nfault seed {seed} (replay with CLUEBUS_FAULT_SEED={seed})")
    return random.Random(seed)  # noqa: S311 - replayable test randomness, not security
