"""The critic: prompt contents, strict per-element verdicts, and the shared parsing."""

from __future__ import annotations

import json

import pytest

from core.triplets import PhraseTriplet
from core.vocabulary import ROLES
from ml.stages.backends.openai_critic import OpenAICritic
from ml.stages.calibration import calibrate_and_merge
from ml.stages.parsing import CRITIC_SCHEMA, parse_critic
from ml.stages.types import AnnotatorResult, StageError
from demo.chat_server import Reply, critic_json, distribution

TRIPLETS = (
    PhraseTriplet("stormy beach", "dark clouds", "lone fisherman"),
    PhraseTriplet("grey sea", "crashing waves", "small boat"),
)


def _result(model: str, peak: str, triplets=TRIPLETS) -> AnnotatorResult:
    return AnnotatorResult(
        model=model, prompt_version="annotate_v1", triplets=triplets, distribution=distribution(peak),
        rationale=f"{model} thinks {peak}", raw_output="{}",
    )


@pytest.fixture
def results():
    return [_result("gpt-4o", "fear"), _result("gemini", "sadness", TRIPLETS[:1])]


@pytest.fixture
def critic(fake_openai, openai_key):
    return OpenAICritic(name="critic-4o", model="gpt-4o", base_url=fake_openai.base_url, api_key_env=openai_key, max_retries=0)


def _answer(n_triplets: int, **changes) -> str:
    prompt = "\n".join(f"{i}. background: x" for i in range(n_triplets))
    answer = json.loads(critic_json(prompt))
    answer.update(changes)
    return json.dumps(answer)


def test_critic_judges_every_candidate_element(critic, fake_openai, ml_image, results):
    calibration = calibrate_and_merge(results, {})

    verdict = critic.review(ml_image, results, calibration, triplets=TRIPLETS)

    assert verdict.model == "critic-4o"
    assert verdict.prompt_version == "critic_v1"
    assert [(e.triplet_index, e.role) for e in verdict.elements] == [(t, r) for t in range(2) for r in ROLES]
    assert verdict.label_verdict == "ok"
    assert verdict.reasoning.startswith("I looked at")
    body = fake_openai.requests[-1]
    text = body["messages"][0]["content"][0]["text"]
    assert "1. background: grey sea | attribute: crashing waves | subject: small boat" in text
    assert f"Calibrated emotion label: {calibration.label}" in text
    assert '"annotator": "gemini"' in text and "gemini thinks sadness" in text
    assert body["response_format"]["json_schema"]["schema"] == CRITIC_SCHEMA


def test_critic_defaults_to_the_merged_candidates(critic, fake_openai, ml_image, results):
    calibration = calibrate_and_merge(results, {})
    verdict = critic.review(ml_image, results, calibration)
    # gemini's only triplet duplicates gpt-4o's first: two candidates remain
    assert {e.triplet_index for e in verdict.elements} == {0, 1}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (_answer(1), "no verdict for 1 background, 1 attribute, 1 subject"),
        (_answer(3), "triplet_index 2 is not in 0..1"),
        (_answer(2, label_verdict="maybe"), "label_verdict: verdict must be one of"),
        (_answer(2, suggested_label="joy"), "suggested_label: unknown emotion 'joy'"),
        (_answer(2, reasoning=""), "reasoning: expected a non-empty string"),
        ("not json", "malformed JSON"),
    ],
)
def test_bad_critic_answers_are_stage_errors(critic, fake_openai, ml_image, results, answer, reason):
    fake_openai.push(Reply(answer))
    with pytest.raises(StageError) as caught:
        critic.review(ml_image, results, calibrate_and_merge(results, {}), triplets=TRIPLETS)
    assert reason in caught.value.reason
    assert caught.value.raw_output == answer


def test_duplicate_verdicts_are_rejected():
    answer = json.loads(_answer(1))
    answer["elements"].append(dict(answer["elements"][0]))
    with pytest.raises(StageError, match="a second verdict for triplet 0 background"):
        parse_critic(json.dumps(answer), model="c", prompt_version="critic_v1", triplets=TRIPLETS[:1])


def test_fenced_json_is_accepted_but_nothing_else_around_it():
    answer = _answer(1)
    parsed = parse_critic(f"```json\n{answer}\n```", model="c", prompt_version="critic_v1", triplets=TRIPLETS[:1])
    assert len(parsed.elements) == 3
    with pytest.raises(StageError, match="malformed JSON"):
        parse_critic(f"Here you go: {answer}", model="c", prompt_version="critic_v1", triplets=TRIPLETS[:1])
