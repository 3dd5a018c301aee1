"""Every agreement test starts with an empty cache (reports are cached by data stamp)."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()
