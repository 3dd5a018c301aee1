"""Many chat calls from one process: concurrency and rate limits, retries, usage.

The real ``openai`` client against the local chat server (``demo.chat_server``), which
answers after ``delay_s`` and records how many requests it held at once.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from demo.chat_server import ChatServer, Reply, annotation_json
from ml.stages.backends import openai_chat
from ml.stages.backends.openai_chat import ChatEndpoint, TokenBucket, retry_after_s
from ml.stages.backends.openai_vlm import OpenAIAnnotator
from ml.stages.parsing import ANNOTATION_SCHEMA
from ml.stages.types import StageError
from tests.ml.core_fixtures import png_image

DELAY = 0.3


@pytest.fixture
def slow_server():
    server = ChatServer(delay_s=DELAY).start()
    yield server
    server.stop()


def endpoint(server: ChatServer, **options) -> ChatEndpoint:
    return ChatEndpoint(model=options.pop("model", "gpt-4o"), base_url=server.base_url, api_key_env=None, **options)


def call(ep: ChatEndpoint, text: str = "hello"):
    return ep.complete([{"role": "user", "content": text}], schema_name="emoverse_annotation", schema=ANNOTATION_SCHEMA)


def test_fifty_calls_at_concurrency_sixteen_take_four_rounds_and_never_more_in_flight(slow_server):
    annotator = OpenAIAnnotator(name="a", model="m-16", base_url=slow_server.base_url, api_key_env=None,
                                max_concurrency=16, max_retries=0)
    images = [png_image(16, 12, seed=i, key=str(i)) for i in range(50)]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as callers:  # 50 worker threads asking at once
        results = list(callers.map(annotator.annotate, images))
    elapsed = time.monotonic() - started

    assert len(results) == 50 and all(r.label == "fear" for r in results)
    assert slow_server.max_in_flight == 16
    rounds = math.ceil(50 / 16)
    assert rounds * DELAY * 0.9 <= elapsed < rounds * DELAY + 2.0  # 4 rounds, not 50 calls one after another


def test_annotate_many_keeps_its_calls_in_flight_together_and_in_order(slow_server):
    annotator = OpenAIAnnotator(name="a", model="m-many", base_url=slow_server.base_url, api_key_env=None,
                                max_concurrency=8, max_retries=0)
    slow_server.push(Reply("bad gateway", status=400))  # the first call fails, the others go on
    images = [png_image(16, 12, seed=i, key=str(i)) for i in range(16)]

    started = time.monotonic()
    results = annotator.annotate_many(images)
    elapsed = time.monotonic() - started

    assert slow_server.max_in_flight == 8
    assert elapsed < 2 * DELAY + 1.5
    assert sum(isinstance(r, StageError) for r in results) == 1
    assert sum(not isinstance(r, StageError) for r in results) == 15


def test_an_annotator_and_a_critic_on_one_server_share_its_concurrency(slow_server):
    first = endpoint(slow_server, model="shared", max_concurrency=3)
    second = endpoint(slow_server, model="shared", max_concurrency=3)
    assert first.limiter is second.limiter

    with ThreadPoolExecutor(max_workers=12) as callers:
        list(callers.map(lambda i: call(first if i % 2 else second), range(12)))

    assert slow_server.max_in_flight == 3


def test_429_with_retry_after_is_waited_for_then_succeeds(slow_server):
    ep = endpoint(slow_server, model="m-429", max_retries=3)
    slow_server.push(Reply("slow down", status=429, delay_s=0, headers={"retry-after": "0.5"}),
                     Reply(annotation_json(peak="awe"), delay_s=0))

    started = time.monotonic()
    completion = call(ep)
    elapsed = time.monotonic() - started

    assert '"awe"' in completion.text
    assert len(slow_server.requests) == 2
    assert elapsed >= 0.5  # honoured the server's Retry-After


def test_5xx_is_retried_with_backoff_until_the_retries_run_out(slow_server, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(openai_chat.time, "sleep", lambda s: waits.append(s))
    ep = endpoint(slow_server, model="m-500", max_retries=3, backoff_base_s=0.5, backoff_max_s=3.0)
    slow_server.push(*[Reply("boom", status=503, delay_s=0)] * 4)

    with pytest.raises(StageError) as caught:
        call(ep)

    assert caught.value.transient and "HTTP 503" in caught.value.reason
    assert len(slow_server.requests) == 4
    assert len(waits) == 3  # full jitter under base x 2^attempt, capped
    assert all(0 <= w <= cap for w, cap in zip(waits, (0.5, 1.0, 2.0)))


def test_a_retry_gives_its_concurrency_slot_back_while_it_waits(slow_server):
    ep = endpoint(slow_server, model="m-slot", max_concurrency=1, max_retries=1)
    slow_server.push(Reply("busy", status=429, delay_s=0, headers={"retry-after": "1"}))
    results = {}

    def first():
        results["first"] = call(ep)

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.2)  # the first call got its 429 and is waiting out Retry-After
    started = time.monotonic()
    call(ep)  # not blocked by the waiting retry: one slot, free
    assert time.monotonic() - started < 1.0
    thread.join(timeout=10)
    assert "first" in results


def test_requests_per_minute_paces_the_calls(slow_server):
    ep = endpoint(slow_server, model="m-rpm", requests_per_minute=600, max_retries=0)  # 10/s, a 10-call bucket
    slow_server.delay_s = 0

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=25) as callers:
        list(callers.map(lambda _: call(ep), range(25)))
    elapsed = time.monotonic() - started

    assert elapsed >= (25 - 10) / 10 * 0.9  # the bucket's 10 at once, then 10 a second


def test_tokens_per_minute_paces_by_the_tokens_the_answers_used(slow_server):
    ep = endpoint(slow_server, model="m-tpm", tokens_per_minute=60_000, max_tokens=100, max_retries=0)  # 1000/s
    slow_server.delay_s = 0
    slow_server.push(*[Reply(annotation_json(), prompt_tokens=400, completion_tokens=100, delay_s=0)] * 6)

    started = time.monotonic()
    for _ in range(6):
        call(ep)
    elapsed = time.monotonic() - started

    # The first five answers used 2500 tokens, 1000 were banked, 1000 come a second: the sixth waits 1.5 s.
    assert elapsed >= (5 * 500 - 1000) / 1000 * 0.95


def test_token_bucket_waits_for_its_units():
    now = [0.0]
    bucket = TokenBucket(rate=2.0, capacity=2.0, clock=lambda: now[0])
    bucket.take(2)
    bucket.charge(2)  # used more than estimated: the balance goes below zero
    assert bucket.level == pytest.approx(-2.0)
    now[0] = 1.5
    bucket.take(1)
    assert bucket.level == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after-ms": "250"}, 0.25), ({"retry-after": "3"}, 3.0), ({}, None), ({"retry-after": "soon"}, None)],
)
def test_retry_after_headers(headers, seconds):
    assert retry_after_s(headers) == seconds


@pytest.mark.parametrize("option", ["max_concurrency", "requests_per_minute", "tokens_per_minute"])
def test_a_limit_must_be_positive(option):
    with pytest.raises(ValueError, match=option):
        ChatEndpoint(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=None, **{option: 0})
