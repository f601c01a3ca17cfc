"""Shared test set-up: hypothesis profiles (CI runs derandomized, without deadlines)."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=20, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=20,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _seed_minidl():
    """Every test starts from the same minidl and NumPy random state."""
    import minidl
    minidl.manual_seed(0)
    np.random.seed(0)
    yield
