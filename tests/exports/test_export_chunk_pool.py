"""ChunkPool: results in order, their large bytes back through shared memory, valid until the next result."""

from __future__ import annotations

import gc

import pytest

from exports.chunks import ChunkPool, collector_quiet


def _encode(n: int) -> tuple:
    """A result with bytes of every size: small (the pipe), a slot's worth, and more than a slot (the pipe)."""
    return n, bytes([n % 251]) * (n * 7_000), ("label", b"%d" % n * (n * 1_000)), [n]


@pytest.fixture
def small_slots(monkeypatch):
    monkeypatch.setattr(ChunkPool, "SLOT_BYTES", 256 * 1024)
    monkeypatch.setattr(ChunkPool, "SHARED_MIN", 1024)


def test_results_come_back_in_order_and_equal_to_encoding_in_process(small_slots):
    pool = ChunkPool(2)
    try:
        seen = []
        for result in pool.map(_encode, range(60)):
            assert result == _encode(result[0])  # a memoryview compares equal to the bytes it shows
            seen.append(result[0])
        assert seen == list(range(60))
    finally:
        pool.close()


def test_a_shared_result_is_released_when_the_next_one_is_asked_for(small_slots):
    pool = ChunkPool(2)
    try:
        results = pool.map(_encode, range(1, 11))
        first = next(results)
        assert isinstance(first[1], memoryview) and bytes(first[1]) == _encode(1)[1]
        second = next(results)
        assert bytes(second[1]) == _encode(2)[1]
        with pytest.raises(ValueError):  # released: its slot may hold another chunk now
            bytes(first[1])
        assert [r[0] for r in results] == list(range(3, 11))
    finally:
        pool.close()


def test_the_collector_is_quieter_during_an_export_and_as_before_after_it():
    gc.unfreeze()  # whatever an earlier test of this process froze
    threshold = gc.get_threshold()
    first, second = collector_quiet(), collector_quiet()  # two exports in threads of one process
    first.__enter__()
    assert gc.get_threshold()[0] >= 50_000 and gc.get_freeze_count() > 0
    second.__enter__()
    first.__exit__(None, None, None)  # the first to end leaves the other's export quiet
    assert gc.get_threshold()[0] >= 50_000 and gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0
    gc.freeze()  # frozen by something else of the process: left frozen
    try:
        assert gc.get_freeze_count() > 0
        with collector_quiet():
            pass
        # Still frozen (not an exact count: a frozen object freed meanwhile, by any thread of
        # the process, leaves the permanent generation and lowers it by one).
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
