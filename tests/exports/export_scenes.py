"""A dataset in every state an export meets: final annotations of each kind, model-only items, filters' edges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Decision, Image, ImageSource, ImageStatus
from annotations.services import image_set_status
from tests.factories import (
    DatasetFactory,
    ImageFactory,
    UserFactory,
    annotation_payload,
    make_annotation,
)


def des_vector(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(1024).astype("<f4").astype(float).tolist()


def payload(image: Image, *, label: str = "fear", des_seed: int | None = None, **kwargs) -> dict:
    data = annotation_payload(image.width, image.height, label=label, **kwargs)
    if des_seed is not None:
        data["des"] = des_vector(des_seed)
    return data


def approve(image: Image, *, label: str, agreement: float | None = None) -> Image:
    return image_set_status(image=image, status=ImageStatus.APPROVED, label=label, agreement=agreement)


@dataclass
class Scene:
    dataset: object
    imported: Image  # approved import, with DES
    reviewed: Image  # approved human review (awe, Flickr30K)
    adjudicated: Image  # approved human (fear) then adjudication (sadness)
    model_only: Image  # status approved, but only model answers: never exported
    in_review: Image  # model only, in review
    reviewed_in_review: Image  # an approved human version while the image is still in review: not exported


def build_scene(slug: str = "demo") -> Scene:
    dataset = DatasetFactory(slug=slug)
    reviewer = UserFactory(username="alice")
    adjudicator = UserFactory(username="carol")

    imported = ImageFactory(dataset=dataset, source=ImageSource.EMOSET)
    make_annotation(imported, author_name="gpt-4o", payload=payload(imported, label="awe"))
    make_annotation(imported, kind=AnnotationKind.IMPORT, author_name="import", decision=Decision.APPROVED,
                    payload=payload(imported, label="fear", des_seed=1))
    approve(imported, label="fear", agreement=0.9)

    reviewed = ImageFactory(dataset=dataset, source=ImageSource.FLICKR30K, width=80, height=60)
    make_annotation(reviewed, author_name="gpt-4o", payload=payload(reviewed, label="fear"))
    make_annotation(reviewed, kind=AnnotationKind.HUMAN, author_name="alice", author_user=reviewer, decision=Decision.APPROVED,
                    payload=payload(reviewed, label="awe", des_seed=2, subject_phrase="a lighthouse"))
    approve(reviewed, label="awe", agreement=0.4)

    adjudicated = ImageFactory(dataset=dataset, source=ImageSource.EMOSET)
    make_annotation(adjudicated, kind=AnnotationKind.HUMAN, author_name="alice", author_user=reviewer, decision=Decision.APPROVED,
                    payload=payload(adjudicated, label="fear"))
    make_annotation(adjudicated, kind=AnnotationKind.ADJUDICATION, author_name="carol", author_user=adjudicator,
                    payload=payload(adjudicated, label="sadness", with_mask=False))
    # A later approved human version does not beat the adjudication.
    make_annotation(adjudicated, kind=AnnotationKind.HUMAN, author_name="bob", decision=Decision.APPROVED,
                    payload=payload(adjudicated, label="amusement"))
    approve(adjudicated, label="sadness", agreement=0.2)

    model_only = ImageFactory(dataset=dataset)
    make_annotation(model_only, author_name="gpt-4o", payload=payload(model_only, label="anger"))
    approve(model_only, label="anger", agreement=0.95)

    in_review = ImageFactory(dataset=dataset, status=ImageStatus.IN_REVIEW)
    make_annotation(in_review, author_name="gpt-4o")

    reviewed_in_review = ImageFactory(dataset=dataset, status=ImageStatus.IN_REVIEW, source=ImageSource.AIGC)
    make_annotation(reviewed_in_review, kind=AnnotationKind.HUMAN, author_name="alice", author_user=reviewer,
                    decision=Decision.APPROVED, payload=payload(reviewed_in_review, label="contentment"))
    return Scene(dataset, imported, reviewed, adjudicated, model_only, in_review, reviewed_in_review)


def add_auto_accepted(dataset, *, label: str = "excitement") -> Image:
    """An image the pipeline auto-accepted (merged answer approved, status approved) that no person reviewed."""
    image = ImageFactory(dataset=dataset, source=ImageSource.WEB)
    make_annotation(image, author_name="gpt-4o", payload=payload(image, label=label))
    make_annotation(image, author_name=PIPELINE_AUTHOR, decision=Decision.APPROVED,
                    decision_reason="auto-accepted: confidence and agreement at or above 0.9",
                    payload=payload(image, label=label, des_seed=3))
    return approve(image, label=label, agreement=0.97)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Users are created per test; a fast hasher keeps the suite quick (tests only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
