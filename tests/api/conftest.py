"""API test fixtures: the demo-like world (tests/api/world.py) and the fuzzer's case count."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.cache import cache

from tests.api.world import World, build_world


@pytest.fixture(autouse=True)
def _fast_api_settings(settings):
    """Users are created per test (a fast hasher); agreement reports computed in a request
    resample a little only (the statistics are tested in tests/agreement)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 20


@pytest.fixture
def world(db) -> World:
    cache.clear()  # cached agreement reports and throttle counts of an earlier test
    return build_world()


@pytest.fixture
def fuzz_cases(request):
    """Counts the cases a fuzz test sent; the count goes into the test's report
    (``user_properties``), and ``tests/conftest.py`` prints the total at the end of the run."""
    counter: Counter[str] = Counter()
    yield counter
    request.node.user_properties.append(("fuzz_cases", sum(counter.values())))
