"""The demo's QA pairs and ratings, so a new user sees the QA review and rating pages.

Per demo image, a handful of pairs written from its imported annotation (the CES label, the
triplets, the rationale): a multiple-choice emotion question, a yes/no question about the
background, a yes/no polarity question, an open question about the subject, and on every
other image a counterfactual multiple-choice question whose stated answer the (demo) critic
did not reproduce, so it is reviewed first. Pairs link the B-A-S elements they are about.
The models' scores on the default scales go with every image (shown unless the rater is in
blind mode), and two people have rated the first image, so its aggregates have an interval.

Idempotent: an image that has QA pairs gets none again; a rating that exists is kept.
"""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model
from django.db import transaction

from annotations.models import Dataset, Image
from core.vocabulary import EMOTIONS, POSITIVE_EMOTIONS
from qa.errors import AlreadyRated
from qa.models import AssessmentScale, AuthorKind, QAPair
from qa.selectors import image_context, qa_axes
from qa.services import qa_config_install_defaults, qa_pair_create, rating_create
from qa.validation import validate_pair

DEMO_QA_MODEL = "gpt-4o (demo)"
DEMO_RATERS = ("reviewer2", "adjudicator")


def _pairs_for(image: Image, index: int) -> list[tuple[dict, list[tuple[int, str]], bool | None]]:
    """(pair values, linked elements as (triplet index, role), critic agrees) for one image."""
    context = image_context(image_id=image.pk)
    if context.label is None or not context.triplets:
        return []
    label, (background, _attribute, subject) = context.label, context.triplets[0]
    rng = random.Random(f"demo-qa:{image.sha256}")
    others = rng.sample([e for e in EMOTIONS if e != label], 3)
    options = [label, *others]
    rng.shuffle(options)
    positive = label in POSITIVE_EMOTIONS
    pairs = [
        (
            {
                "category": "perception",
                "dimension": "holistic",
                "type": "multiple_choice",
                "question": "Which emotion does this image evoke most strongly?",
                "options": options,
                "answer": options.index(label),
                "rationale": context.rationale,
            },
            [],
            True,
        ),
        (
            {
                "category": "attribution",
                "dimension": "scene",
                "type": "yes_no",
                "question": f"Does the {background} contribute to the feeling of {label}?",
                "answer": "yes",
            },
            [(0, "background")],
            True,
        ),
        (
            {
                "category": "intensity",
                "dimension": "atmosphere",
                "type": "yes_no",
                "question": "Is the emotion this image evokes a positive one?",
                "answer": "yes" if positive else "no",
            },
            [],
            True,
        ),
        (
            {
                "category": "reasoning",
                "dimension": "subject",
                "type": "open",
                "question": f"Why does the {subject} evoke {label}?",
                "answer": context.rationale or f"It evokes {label}.",
            },
            [(0, "subject")],
            None,
        ),
    ]
    if index % 2 == 0:
        pairs.append(
            (
                {
                    "category": "counterfactual",
                    "dimension": "subject",
                    "type": "multiple_choice",
                    "question": f"If the {subject} were removed, how would the feeling of {label} change?",
                    "options": ["it would weaken", "it would not change", "it would turn into its opposite"],
                    "answer": 1,
                },
                [(0, "subject")],
                False,
            )
        )
    return pairs


def _model_scores(label: str) -> dict[str, float]:
    positive = label in POSITIVE_EMOTIONS
    arousal = 7 if label in ("excitement", "fear", "anger", "amusement") else 4
    return {"intensity": 6, "valence": 7 if positive else 3, "arousal": arousal}


@transaction.atomic
def demo_qa_load(*, dataset: Dataset) -> tuple[int, int]:
    """Seed the demo dataset's QA pairs and ratings; returns (pairs added, ratings added)."""
    qa_config_install_defaults(dataset=dataset)
    axes = qa_axes(dataset_id=dataset.pk)
    scales = {s.key: s for s in AssessmentScale.objects.filter(dataset=dataset, active=True)}
    images = list(Image.objects.filter(dataset=dataset).order_by("id"))
    pairs_added = ratings_added = 0
    for index, image in enumerate(images):
        if QAPair.objects.filter(image=image).exists():
            continue
        context = image_context(image_id=image.pk)
        for values, refs, agrees in _pairs_for(image, index):
            checked = validate_pair(values, categories=axes.categories, dimensions=axes.dimensions)
            elements = [context.element_ids[ref] for ref in refs if ref in context.element_ids]
            pair = qa_pair_create(
                image=image,
                values=checked,
                author_kind=AuthorKind.MODEL,
                author_name=DEMO_QA_MODEL,
                elements=elements,
                model_name=DEMO_QA_MODEL,
                prompt_version="demo",
            )
            critic = {True: 1.0, False: 0.0, None: 0.5}[agrees]
            QAPair.objects.filter(pk=pair.pk).update(
                critic_agrees=agrees,
                priority=critic,
                critic_answer="" if agrees is None else (values["answer"] if agrees else "0"),
            )
            pairs_added += 1
    users = {u.username: u for u in get_user_model().objects.filter(username__in=DEMO_RATERS)}
    for index, image in enumerate(images):
        label = image_context(image_id=image.pk).label
        if label is None:
            continue
        scores = _model_scores(label)
        raters = [(None, DEMO_QA_MODEL, 0)]
        if index == 0:
            raters += [(users.get(name), "", offset) for offset, name in enumerate(DEMO_RATERS, start=-1)]
        for user, model_name, offset in raters:
            if model_name == "" and user is None:
                continue
            for key, value in scores.items():
                if key not in scales:
                    continue
                try:
                    rating_create(
                        image=image, scale=scales[key], value=value + offset, user=user, model_name=model_name
                    )
                    ratings_added += 1
                except AlreadyRated:
                    pass
    return pairs_added, ratings_added
