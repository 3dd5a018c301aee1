"""``next`` on PostgreSQL answers with JSON the database built (``review_next``, migration
``review.0006``; ``review.selectors.lease_payload_json``). Parsed, it must equal what the Python
path builds for the same lease (``review.selectors.lease_payload`` through the view's
``OutputSerializer`` and DRF's JSON renderer), for an item with everything a payload can hold."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Element, ElementStatus
from core.vocabulary import EKMAN
from review.apis import NextAPI
from review.models import Draft, Lease
from review.selectors import lease_payload
from tests.factories import DatasetFactory, ImageFactory, make_annotation, rect_mask_rle

pytestmark = pytest.mark.django_db(transaction=True)

CRITIC = {"label_verdict": "ok", "reasoning": "Waves \u2028 and a boat.", "elements": [{"role": "subject", "ok": False}],
          "count": 2**70, "score": 0.1 + 0.2}


def _distribution(label: str) -> dict[str, float]:
    return {e: (0.5 if e == label else 0.1) for e in EKMAN.labels}


def _answer(width: int, height: int, label: str, subject: str, *, triplets: int = 2) -> dict:
    out = []
    for i in range(triplets):
        box = (4 + i, 4, width // 2 + i, height // 2)
        out.append({
            "background": {"phrase": f"stormy sea {i}", "box": [0, 0, width, height // 2], "box_score": 0.75},
            "attribute": {"phrase": "dark, \u00e9cume \u2029 churning"},
            "subject": {"phrase": subject, "box": list(box), "box_score": 0.8125,
                        "mask": rect_mask_rle(width, height, box), "mask_score": 0.9},
        })
    return {"triplets": out, "ces": {"label": label, "confidence": 0.5, "distribution": _distribution(label)},
            "rationale": "The \"dark\" waves evoke fear."}


@pytest.fixture
def rich_item(reviewer):
    dataset = DatasetFactory(slug="rich", taxonomy=EKMAN.to_spec(), require_all_checked=True)
    image = ImageFactory(dataset=dataset, width=80, height=60)
    w, h = image.width, image.height
    make_annotation(image, author_name="old-model", payload=_answer(w, h, "sadness", "boat", triplets=1),
                    pipeline_version="run-1")
    make_annotation(image, author_name="gpt-4o", payload=_answer(w, h, "fear", "small boat"), pipeline_version="run-2")
    make_annotation(image, author_name="Gemini-2.5", payload=_answer(w, h, "surprise", "lone boat", triplets=3),
                    pipeline_version="run-2")
    make_annotation(image, kind=AnnotationKind.IMPORT, author_name="curated", payload=_answer(w, h, "fear", "skiff"))
    base = make_annotation(image, author_name=PIPELINE_AUTHOR, payload=_answer(w, h, "fear", "small boat"),
                           pipeline_version="run-2", critic=CRITIC)
    # an element decided, one without a box
    Element.objects.filter(triplet__annotation=base, role="background").update(status=ElementStatus.EDITED, x0=None,
                                                                             y0=None, x1=None, y1=None, box_score=None)
    return dataset, image


def _python_payload(lease_id: int) -> dict:
    lease = Lease.objects.select_related("image", "dataset").get(pk=lease_id)
    data = NextAPI.OutputSerializer(lease_payload(lease)).data
    return json.loads(JSONRenderer().render(data))


def test_the_json_built_by_postgresql_equals_the_python_payload(on_postgres, rich_item, reviewer):
    dataset, image = rich_item
    client = APIClient()
    client.force_authenticate(reviewer)
    first = client.post("/api/review/next/", {"dataset": "rich"}, format="json")
    assert first.status_code == 200, first.content
    item = first.json()
    assert item["base"]["author_name"] == PIPELINE_AUTHOR and item["critic"]["count"] == 2**70
    assert [a["author_name"] for a in item["annotators"]] == ["Gemini-2.5", "gpt-4o"]
    assert [a["author_name"] for a in item["earlier_annotators"]] == ["old-model"]  # imports are never annotators
    assert item["disagreement"] is not None and item["draft"] is None
    assert item == _python_payload(item["lease"]["id"])
    assert b"\\u2028" in first.content and "\u2028".encode() not in first.content  # as DRF's renderer writes it

    payload = {"note": "half done \u2028", "big": 2**70, "nested": [{"x": 1.5, "y": None}], "when": "ça"}
    Draft.objects.create(image=image, reviewer=reviewer, lease_id=item["lease"]["id"], payload=payload)
    again = client.post("/api/review/next/", {"dataset": "rich"}, format="json").json()
    assert again["draft"]["payload"] == payload
    assert again == _python_payload(item["lease"]["id"])


def test_a_draft_over_the_limit_is_not_sent_on_either_path(on_postgres, rich_item, reviewer, settings):
    dataset, image = rich_item
    client = APIClient()
    client.force_authenticate(reviewer)
    item = client.post("/api/review/next/", {"dataset": "rich"}, format="json").json()
    Draft.objects.create(image=image, reviewer=reviewer, lease_id=item["lease"]["id"], payload={"note": "x" * 200})
    settings.EMOVERSE_MAX_DRAFT_BYTES = 100
    again = client.post("/api/review/next/", {"dataset": "rich"}, format="json").json()
    assert again["draft"] is None and "larger than the draft limit" in again["draft_notice"]
    assert again == _python_payload(item["lease"]["id"])


def test_unknown_dataset_and_empty_queue_answer_as_before(on_postgres, reviewer):
    client = APIClient()
    client.force_authenticate(reviewer)
    missing = client.post("/api/review/next/", {"dataset": "nope"}, format="json")
    assert missing.status_code == 404 and missing.json()["detail"] == "No Dataset matches the given query."
    DatasetFactory(slug="empty")
    empty = client.post("/api/review/next/", {"dataset": "empty"}, format="json")
    assert empty.status_code == 404 and "No item left to review in empty" in empty.json()["detail"]


def test_the_browsable_api_still_renders_next(on_postgres, rich_item, reviewer):
    client = APIClient()
    client.force_authenticate(reviewer)
    response = client.post("/api/review/next/", {"dataset": "rich"}, format="json", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert timezone.get_current_timezone_name() == "UTC"
