"""The refine lane: click-to-refine has a queue of its own, taken before bulk GPU work, and
the SAM embedding cache holds copies sized in MiB (LRU), not views of a batch's tensor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from celery import current_app

from ml.stages.backends._sam_common import CachedSamSegmenter, Embedded
from ml.stages.types import BackendNotConfigured, ImageInput

MIB = 2**20


class BatchSam(CachedSamSegmenter):
    """The cache logic of the SAM backends over an encoder that returns slices of one batch
    tensor, as both real ones do; ``C`` channels of 64x64 float32 (C=64: 1 MiB per image)."""

    def __init__(self, channels: int = 64, **options):
        super().__init__(**options)
        self.channels, self.encoded = channels, 0

    def _encode(self, images: Sequence[ImageInput]) -> list[Embedded]:
        self.encoded += len(images)
        batch = torch.randn(len(images), self.channels, 64, 64)
        return [Embedded(batch[k : k + 1], (image.height, image.width), (64, 64)) for k, image in enumerate(images)]

    def _predict(self, embedded, *, multimask, points=None, labels=None, boxes=None):
        n = 1 if boxes is None else len(boxes)
        return np.ones((n, 1, 4, 4), dtype=bool), np.ones((n, 1), dtype=np.float32)


def _image(key: str) -> ImageInput:
    return ImageInput(key=key, data=key.encode(), width=4, height=4, mime_type="image/png")


def test_cached_embeddings_are_copies_not_views_of_the_batch():
    sam = BatchSam(batch_size=4, cache_size=32, cache_mib=64)
    embedded = sam.embed([_image(f"i{k}") for k in range(4)])
    for e in embedded:
        assert e.features._base is None  # not a view: the batch tensor can be freed
        assert e.features.untyped_storage().nbytes() == 64 * 64 * 64 * 4  # its own 1 MiB, not the batch's 4
    assert sam.cache.nbytes == 4 * MIB


def test_the_cache_is_an_lru_sized_in_mib():
    sam = BatchSam(batch_size=2, cache_size=100, cache_mib=3)
    sam.embed([_image("a"), _image("b"), _image("c")])
    sam.embed([_image("a")])  # a is now the most recently used
    assert sam.encoded == 3
    sam.embed([_image("d")])  # 4 MiB > 3: the least recently used (b) goes
    assert sam.cache.nbytes == 3 * MIB and len(sam.cache) == 3
    sam.embed([_image("a"), _image("c"), _image("d")])
    assert sam.encoded == 4  # all three still cached
    sam.embed([_image("b")])
    assert sam.encoded == 5


def test_refine_clicks_on_one_image_encode_it_once():
    sam = BatchSam(batch_size=4, cache_size=8, cache_mib=16)
    for _ in range(3):
        sam.refine(_image("x"), None, [(1.0, 1.0)], [1])
    assert sam.encoded == 1 and sam.cache.hits == 2


@pytest.mark.parametrize("bad", [-1, "big", True])
def test_a_bad_cache_size_says_so(bad):
    with pytest.raises(BackendNotConfigured, match="cache_mib must be a number of MiB >= 0"):
        BatchSam(batch_size=1, cache_size=1, cache_mib=bad)


def test_zero_mib_turns_the_cache_off():
    sam = BatchSam(batch_size=1, cache_size=8, cache_mib=0)
    sam.embed([_image("a")])
    sam.embed([_image("a")])
    assert sam.encoded == 2 and len(sam.cache) == 0


def test_refine_has_its_own_queue_taken_first_by_gpu_workers(settings):
    app = current_app._get_current_object()
    route = app.amqp.router.route({}, "ml.tasks.gpu_refine_mask")
    assert route["queue"].name == settings.EMOVERSE_REFINE_QUEUE == "refine"
    assert app.amqp.router.route({}, "ml.tasks.gpu_ground_segment")["queue"].name == "gpu"
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] == "priority"
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
