"""The OpenAI-compatible annotator against the fake server, with the real openai client."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from core.vocabulary import EMOTIONS
from ml.stages.backends.openai_vlm import OpenAIAnnotator
from ml.stages.parsing import ANNOTATION_SCHEMA
from ml.stages.types import BackendNotConfigured, StageError
from demo.chat_server import GOOD_TRIPLETS, Reply, annotation_json, distribution

FAST_RETRY = {"retry-after-ms": "10"}


@pytest.fixture
def annotator(fake_openai, openai_key):
    return OpenAIAnnotator(
        name="gpt-4o",
        model="gpt-4o-2024-08-06",
        base_url=fake_openai.base_url,
        api_key_env=openai_key,
        timeout=30.0,  # never reached: the fake server answers at once
        max_retries=0,
        price_per_1k_prompt=0.0025,
        price_per_1k_completion=0.01,
    )


def test_good_answer_is_parsed_with_usage_and_cost(annotator, fake_openai, ml_image):
    fake_openai.push(Reply(annotation_json(peak="awe", p=0.6, triplets=GOOD_TRIPLETS), prompt_tokens=1000, completion_tokens=200))

    result = annotator.annotate(ml_image)

    assert result.model == "gpt-4o"
    assert result.prompt_version == "annotate_v1"
    assert result.label == "awe"
    assert result.distribution == pytest.approx(distribution("awe", 0.6))
    assert [t.phrases() for t in result.triplets] == GOOD_TRIPLETS
    assert result.rationale == "The dark clouds evoke fear."
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 200)
    assert result.usage.cost_usd == pytest.approx(1000 / 1000 * 0.0025 + 200 / 1000 * 0.01)
    assert json.loads(result.raw_output)["rationale"] == "The dark clouds evoke fear."


def test_request_sends_image_data_url_prompt_and_json_schema(annotator, fake_openai, ml_image):
    annotator.annotate(ml_image)

    body = fake_openai.requests[-1]
    assert body["model"] == "gpt-4o-2024-08-06"
    content = body["messages"][0]["content"]
    text = next(c["text"] for c in content if c["type"] == "text")
    assert all(e in text for e in EMOTIONS)
    url = next(c["image_url"]["url"] for c in content if c["type"] == "image_url")
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == ml_image.data
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"] == ANNOTATION_SCHEMA


def _bad(**changes) -> str:
    answer = json.loads(annotation_json())
    answer.update(changes)
    return json.dumps(answer)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply('{"triplets": [ {"background": "sea"'), "malformed JSON"),
        (Reply("I think it is fear."), "malformed JSON"),
        (Reply(_bad(distribution={**distribution("fear"), "joy": 0.0})), "unknown emotion(s) 'joy'"),
        (Reply(_bad(distribution={**distribution("fear"), "fear": 0.9})), "sum to"),
        (Reply(_bad(distribution={e: 0.125 for e in EMOTIONS[:7]})), "missing emotion(s) sadness"),
        (Reply(_bad(distribution={**distribution("fear"), "fear": "high"})), "fear is not a number"),
        (Reply(_bad(triplets=[])), "triplets: expected a non-empty list"),
        (Reply(_bad(triplets=[{"background": "sea", "attribute": "", "subject": "boat"}])), "triplets[0].attribute"),
        (Reply(_bad(triplets=[{"background": "sea", "subject": "boat"}])), "missing field(s) attribute"),
        (Reply(json.dumps({"triplets": GOOD_TRIPLETS, "distribution": distribution("fear")})), "missing field(s) rationale"),
        (Reply(None, refusal="I can't help with that."), "refused"),
        (Reply(annotation_json()[:40], finish_reason="length"), "truncated"),
        (Reply(""), "empty answer"),
    ],
)
def test_untrusted_output_is_a_stage_error_with_raw_output(annotator, fake_openai, ml_image, reply, reason):
    fake_openai.push(reply)

    with pytest.raises(StageError) as caught:
        annotator.annotate(ml_image)

    assert reason in caught.value.reason
    assert caught.value.reason.startswith("gpt-4o: ")
    assert caught.value.transient is False
    assert caught.value.raw_output == (reply.content or reply.refusal or "")


def test_429_then_success_is_retried_by_the_client(fake_openai, openai_key, ml_image):
    annotator = OpenAIAnnotator(
        name="gpt-4o", model="gpt-4o", base_url=fake_openai.base_url, api_key_env=openai_key, max_retries=2
    )
    fake_openai.push(Reply("rate limited", status=429, headers=FAST_RETRY), Reply(annotation_json(peak="sadness")))

    result = annotator.annotate(ml_image)

    assert result.label == "sadness"
    assert len(fake_openai.requests) == 2


def test_persistent_500_becomes_a_transient_error(fake_openai, openai_key, ml_image):
    annotator = OpenAIAnnotator(
        name="gpt-4o", model="gpt-4o", base_url=fake_openai.base_url, api_key_env=openai_key, max_retries=1
    )
    fake_openai.push(*[Reply("boom", status=500, headers=FAST_RETRY)] * 2)

    with pytest.raises(StageError) as caught:
        annotator.annotate(ml_image)

    assert caught.value.transient is True
    assert "HTTP 500" in caught.value.reason
    assert len(fake_openai.requests) == 2


def test_400_is_not_transient(annotator, fake_openai, ml_image):
    fake_openai.push(Reply("model does not support images", status=400))

    with pytest.raises(StageError) as caught:
        annotator.annotate(ml_image)

    assert caught.value.transient is False
    assert "HTTP 400" in caught.value.reason


def test_timeout_is_transient(fake_openai, openai_key, ml_image):
    annotator = OpenAIAnnotator(
        name="gpt-4o", model="gpt-4o", base_url=fake_openai.base_url, api_key_env=openai_key, timeout=0.3, max_retries=0
    )
    answer = threading.Event()
    fake_openai.push(Reply(annotation_json(), until=answer))

    try:
        with pytest.raises(StageError) as caught:
            annotator.annotate(ml_image)
    finally:
        answer.set()

    assert caught.value.transient is True
    assert "timed out" in caught.value.reason


def test_missing_api_key_says_which_variable(monkeypatch):
    monkeypatch.delenv("EMOVERSE_NO_SUCH_KEY", raising=False)
    with pytest.raises(BackendNotConfigured, match="EMOVERSE_NO_SUCH_KEY is not set"):
        OpenAIAnnotator(name="gpt-4o", model="gpt-4o", api_key_env="EMOVERSE_NO_SUCH_KEY")


def test_unknown_prompt_version_lists_the_available_ones(openai_key):
    with pytest.raises(BackendNotConfigured, match="annotate_v1"):
        OpenAIAnnotator(name="gpt-4o", model="gpt-4o", api_key_env=openai_key, prompt="annotate_v99")


def test_local_endpoint_without_key(fake_openai, ml_image):
    annotator = OpenAIAnnotator(name="qwen-vllm", model="Qwen/Qwen2.5-VL-7B-Instruct", base_url=fake_openai.base_url, api_key_env=None)
    assert annotator.annotate(ml_image).model == "qwen-vllm"
