"""Review fixtures: datasets of images in review with a pipeline annotation and two annotators."""

from __future__ import annotations

import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind
from tests.factories import (
    DatasetFactory,
    ImageFactory,
    UserFactory,
    make_annotation,
)


def image_in_review(dataset, *, priority: float = 1.0, label: str = "fear", annotators: bool = True):
    """An image in review with the pipeline's merged annotation and (optionally) two VLM annotators."""
    image = ImageFactory(dataset=dataset, priority=priority)
    make_annotation(image, author_name=PIPELINE_AUTHOR, payload_kwargs={"label": label})
    if annotators:
        make_annotation(image, author_name="gpt-4o", payload_kwargs={"label": label})
        make_annotation(image, author_name="gemini-2.5", payload_kwargs={"label": "awe", "subject_phrase": "lone boat"})
    return image


def human_answer(lease_or_payload, *, label: str | None = None) -> dict:
    """The base annotation as a reviewer would send it back unchanged (every element accepted)."""
    base = lease_or_payload["base"]
    triplets = []
    for t in base["triplets"]:
        item = {"key": t["key"]}
        for role in ("background", "attribute", "subject"):
            if role in t:
                element = {k: v for k, v in t[role].items() if k in ("phrase", "box", "mask")}
                item[role] = {**element, "status": "accepted"}
        triplets.append(item)
    ces = {"label": label or base["ces"]["label"]}
    return {"triplets": triplets, "ces": ces, "rationale": base["rationale"]}


def accept_each(answer: dict, action: str = "accept") -> list[dict]:
    """Element decisions for a reviewer who pressed A on every element of ``answer`` that it keeps
    (``action="accept_all"``: Shift+A) and R on every one it rejects."""
    decisions = []
    for t in answer["triplets"]:
        for role in ("background", "attribute", "subject"):
            if role in t:
                rejected = t[role].get("status") == "rejected"
                decisions.append({"triplet_key": t["key"], "role": role, "action": "reject" if rejected else action,
                                  "before": None, "after": None, "time_ms": 100})
    return decisions


@pytest.fixture
def raw_connection(db):
    """The default connection's psycopg connection, open, its ``prepare_threshold`` (whether the
    hot statements are prepared: ``annotations.prepared``) put back after the test."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    kept = raw.prepare_threshold
    yield raw
    raw.prepare_threshold = kept


@pytest.fixture
def dataset(db):
    return DatasetFactory(slug="demo")


@pytest.fixture
def make_reviewer(db):
    def make(name: str):
        return UserFactory(username=name, roles=["reviewer"])

    return make


@pytest.fixture
def kinds():
    return AnnotationKind


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users are created per test; a fast hasher keeps the suite quick (tests only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
