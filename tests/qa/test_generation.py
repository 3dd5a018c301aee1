"""QA generation through the real openai client against the local fake chat-completions
server: balanced slots, JSON schema, seeded option shuffling, the blind self-check, saving,
idempotency and retries."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from ml.config import reset_registry
from ml.stages import qa as stage
from qa.models import GenerationStatus, QAGeneration, QAPair
from qa.pipeline import qa_generation_request
from qa.services import qa_config_install_defaults
from tests.factories import ImageFactory, make_annotation
from demo.chat_server import Reply, prompt_text, schema_name
from tests.ml.stage_fakes import api_pipeline_config

SLOT = re.compile(r"^(\d+)\. category (\S+), dimension (\S+), type (\S+)$", re.MULTILINE)
QUESTION = re.compile(r"^(\d+)\. \[(\S+)\] (.*?)(?: Options: (.*))?$", re.MULTILINE)
RIGHT = "fear"
OPTIONS = (RIGHT, "awe", "amusement", "contentment")


def generation_reply(body: dict) -> Reply:
    """One pair per slot; a multiple-choice pair always has its right option first."""
    pairs = []
    for index, category, dimension, kind in SLOT.findall(prompt_text(body)):
        pair = {
            "slot": int(index),
            "question": f"Q{index}: what does the {dimension} evoke ({category})?",
            "options": [],
            "correct_option": -1,
            "answer": "",
            "rationale": f"because {index}",
            "elements": [{"triplet": 0, "role": "subject"}],
        }
        if kind == "multiple_choice":
            pair.update(options=list(OPTIONS), correct_option=0)
        elif kind == "yes_no":
            pair["answer"] = "Yes"
        else:
            pair["answer"] = "The dark sea evokes fear."
        pairs.append(pair)
    return Reply(json.dumps({"pairs": pairs}))


def answer_reply(body: dict) -> Reply:
    """The blind critic: right on every question but the first multiple-choice one."""
    answers, wrong_once = [], True
    for index, kind, _, options in QUESTION.findall(prompt_text(body)):
        if kind == "multiple_choice":
            texts = [o.split(") ", 1)[1] for o in options.split(" | ")]
            choice = texts.index(RIGHT)
            if wrong_once:
                choice, wrong_once = (choice + 1) % len(texts), False
            answers.append({"index": int(index), "option": choice, "answer": texts[choice]})
        else:
            answers.append({"index": int(index), "option": -1, "answer": "yes" if kind == "yes_no" else "fear"})
    return Reply(json.dumps({"answers": answers}))


def responder(body: dict) -> Reply:
    return generation_reply(body) if schema_name(body) == "emoverse_qa" else answer_reply(body)


@pytest.fixture
def qa_ml(settings, fake_openai, openai_key):
    fake_openai.responder = responder
    endpoint = {"base_url": fake_openai.base_url, "api_key_env": openai_key, "max_retries": 0}
    settings.EMOVERSE_ML = api_pipeline_config(
        fake_openai.base_url,
        openai_key,
        version="v1",
        qa_version="qa-test",
        qa_generator={
            "name": "gen-4o",
            "backend": "ml.stages.backends.openai_qa.OpenAIQAGenerator",
            "options": {"model": "gpt-4o", "pairs_per_image": 10, **endpoint},
        },
        qa_critic={
            "name": "critic-4o",
            "backend": "ml.stages.backends.openai_qa.OpenAIQACritic",
            "options": {"model": "gpt-4o-mini", **endpoint},
        },
    )
    settings.EMOVERSE_ML["retry_backoff_s"] = 0.01
    reset_registry()
    yield fake_openai
    reset_registry()


def request(image_ids, capture):
    with capture(execute=True):
        return qa_generation_request(image_ids=image_ids)


@pytest.fixture
def image(db):
    image = ImageFactory()
    make_annotation(image)
    qa_config_install_defaults(dataset=image.dataset)
    return image


def test_generation_end_to_end(qa_ml, image, django_capture_on_commit_callbacks):
    [generation_id] = request([image.pk], django_capture_on_commit_callbacks)
    generation = QAGeneration.objects.get(pk=generation_id)
    assert generation.status == GenerationStatus.DONE and generation.pairs_created == 10
    assert generation.critic_mismatches == 1

    gen_body, critic_body = qa_ml.requests
    assert gen_body["response_format"]["json_schema"]["name"] == "emoverse_qa"
    assert gen_body["response_format"]["json_schema"]["schema"] == stage.GENERATION_SCHEMA
    text = prompt_text(gen_body)
    assert "0. background: stormy sea | attribute: dark, churning | subject: small boat" in text
    assert "Emotion label: fear" in text
    # The blind critic sees questions and options, never the answers or rationales.
    critic_text = prompt_text(critic_body)
    assert "because" not in critic_text and "The dark sea evokes fear" not in critic_text

    pairs = list(QAPair.objects.filter(image=image).select_related("category", "dimension"))
    assert Counter(p.category.key for p in pairs) == Counter(
        {k: 2 for k in ("perception", "attribution", "intensity", "counterfactual", "reasoning")}
    )
    assert Counter(p.dimension.key for p in pairs) == Counter(
        {k: 2 for k in ("scene", "subject", "atmosphere", "expression", "holistic")}
    )
    choice = [p for p in pairs if p.question_type == "multiple_choice"]
    assert choice and all(p.options[p.answer_index] == RIGHT for p in choice)
    # Stored in the order seeded by the image and the generator (the generator sent RIGHT
    # first). Which order that is depends on the image's id, so it is computed here, not
    # assumed: for some ids every order keeps RIGHT first (test_shuffle_moves_the_answer).
    for p in choice:
        slot = stage.QASlot(int(re.match(r"Q(\d+):", p.question).group(1)), p.category.key, p.dimension.key,
                            "multiple_choice")
        sent = stage.GeneratedPair(slot, p.question, tuple(OPTIONS), 0, "", "", ())
        expected = stage.shuffle_options(sent, seed=(image.pk, generation.generator_version))
        assert (tuple(p.options), p.answer_index) == (expected.options, expected.answer_index)
    disagreed = [p for p in pairs if p.critic_agrees is False]
    assert len(disagreed) == 1 and disagreed[0].priority == 0.0
    assert all(p.priority == 1.0 for p in pairs if p.critic_agrees)
    assert all(p.critic_agrees is None and p.priority == 0.5 for p in pairs if p.question_type == "open")
    assert all(p.answer == "yes" for p in pairs if p.question_type == "yes_no")
    first = pairs[0]
    assert (first.author_kind, first.author_name, first.model_name, first.prompt_version) == (
        "model",
        "gen-4o",
        "gen-4o",
        "qa_generate_v1",
    )
    assert [e.role for e in first.elements.all()] == ["subject"]

    # Asked again: the generation of this version is done; nothing is sent, nothing stored twice.
    assert request([image.pk], django_capture_on_commit_callbacks) == []
    assert len(qa_ml.requests) == 2 and QAPair.objects.filter(image=image).count() == 10


def test_shuffle_moves_the_answer():
    """Over seeds the right option lands in every position, and the answer index follows it."""
    sent = stage.GeneratedPair(stage.QASlot(0, "perception", "scene", "multiple_choice"), "Q0", OPTIONS, 0, "", "", ())
    shuffled = [stage.shuffle_options(sent, seed=(seed, "v1")) for seed in range(40)]
    assert {pair.answer_index for pair in shuffled} == {0, 1, 2, 3}
    assert all(pair.options[pair.answer_index] == RIGHT and sorted(pair.options) == sorted(OPTIONS) for pair in shuffled)


def test_shuffle_is_seeded_and_stable(qa_ml, image, django_capture_on_commit_callbacks):
    request([image.pk], django_capture_on_commit_callbacks)
    first = list(
        QAPair.objects.filter(image=image, question_type="multiple_choice")
        .order_by("question")
        .values_list("options", flat=True)
    )
    QAPair.objects.all().delete()
    QAGeneration.objects.all().delete()
    request([image.pk], django_capture_on_commit_callbacks)
    again = list(
        QAPair.objects.filter(image=image, question_type="multiple_choice")
        .order_by("question")
        .values_list("options", flat=True)
    )
    assert first == again


def test_transient_error_is_retried_then_succeeds(qa_ml, image, django_capture_on_commit_callbacks):
    qa_ml.push(Reply("overloaded", status=503))
    [generation_id] = request([image.pk], django_capture_on_commit_callbacks)
    generation = QAGeneration.objects.get(pk=generation_id)
    assert generation.status == GenerationStatus.DONE and generation.attempt == 2


def test_malformed_answer_fails_with_reason_and_can_be_requeued(qa_ml, image, django_capture_on_commit_callbacks):
    qa_ml.push(Reply(json.dumps({"pairs": [{"slot": 99}]})))
    [generation_id] = request([image.pk], django_capture_on_commit_callbacks)
    generation = QAGeneration.objects.get(pk=generation_id)
    assert generation.status == GenerationStatus.FAILED
    assert "no usable QA pair" in generation.error and "slot 99 was not asked for" in generation.error
    assert generation.raw_output
    assert request([image.pk], django_capture_on_commit_callbacks) == [generation_id]  # failed ones go again
    assert QAGeneration.objects.get(pk=generation_id).status == GenerationStatus.DONE


def test_plan_is_balanced_across_images_and_respects_types():
    def axis(key, types=stage.QUESTION_TYPES):
        return stage.AxisSpec(key=key, name=key, description="", question_types=tuple(types))

    categories = [axis("a"), axis("b", ("open",)), axis("c", ("yes_no", "multiple_choice"))]
    dimensions = [axis("x"), axis("y", ("multiple_choice",)), axis("z")]
    slots = [s for seed in range(300) for s in stage.plan_slots(categories, dimensions, 7, seed=seed)]
    by_category = Counter(s.category for s in slots)
    by_dimension = Counter(s.dimension for s in slots)
    assert max(by_category.values()) - min(by_category.values()) <= 0.05 * len(slots)
    assert max(by_dimension.values()) - min(by_dimension.values()) <= 0.1 * len(slots)
    allowed = {a.key: set(a.question_types) for a in categories + dimensions}
    assert all(s.question_type in allowed[s.category] & allowed[s.dimension] for s in slots)
    assert stage.plan_slots(categories, dimensions, 7, seed=5) == stage.plan_slots(categories, dimensions, 7, seed=5)


def test_parse_generation_drops_bad_pairs_with_reasons():
    slots = [
        stage.QASlot(0, "a", "x", "multiple_choice"),
        stage.QASlot(1, "a", "x", "yes_no"),
        stage.QASlot(2, "a", "x", "open"),
    ]
    context = stage.QAContext(triplets=(), label="fear", rationale="", emotions=("fear",))
    raw = json.dumps(
        {
            "pairs": [
                {
                    "slot": 0,
                    "question": "Q?",
                    "options": ["a", "A ", "b"],
                    "correct_option": 0,
                    "answer": "",
                    "rationale": "",
                    "elements": [],
                },
                {
                    "slot": 1,
                    "question": "Q?",
                    "options": [],
                    "correct_option": -1,
                    "answer": "maybe",
                    "rationale": "",
                    "elements": [],
                },
                {
                    "slot": 2,
                    "question": "Q?",
                    "options": [],
                    "correct_option": -1,
                    "answer": "Because.",
                    "rationale": "",
                    "elements": [{"triplet": 0, "role": "subject"}],
                },
            ]
        }
    )
    with pytest.raises(stage.StageError) as caught:
        stage.parse_generation(raw, model="m", prompt_version="p", slots=slots, context=context)
    assert "options repeat" in caught.value.reason
    raw_ok = json.loads(raw)
    raw_ok["pairs"][2]["elements"] = []
    result = stage.parse_generation(json.dumps(raw_ok), model="m", prompt_version="p", slots=slots, context=context)
    assert [p.slot.index for p in result.pairs] == [2]
    assert any("yes/no answer 'maybe'" in d for d in result.dropped)


def test_generation_names_the_datasets_taxonomy(qa_ml, db, django_capture_on_commit_callbacks):
    """An Ekman dataset's generation prompt lists Ekman's six emotions, not Mikels' eight."""
    from core.vocabulary import EKMAN
    from tests.factories import DatasetFactory, annotation_payload

    image = ImageFactory(dataset=DatasetFactory(slug="eemo-qa", taxonomy=EKMAN.to_spec()))
    data = annotation_payload(image.width, image.height)
    data["ces"] = {"label": "fear", "distribution": {e: (0.5 if e == "fear" else 0.1) for e in EKMAN.labels}}
    make_annotation(image, payload=data)
    qa_config_install_defaults(dataset=image.dataset)
    request([image.pk], django_capture_on_commit_callbacks)
    text = prompt_text(qa_ml.requests[0])
    assert ", ".join(EKMAN.labels) in text
    assert "amusement" not in text
