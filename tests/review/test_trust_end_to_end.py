"""Issue 12's promise through the API: one image from import through the pipeline, two independent
reviews (one paraphrases a phrase, one rejects an element), adjudication with a mask edit, and the
three exports checked field by field (``tests/review/trust_flow.py``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from annotations.models import Annotation, AnnotationKind, ImageStatus
from review.models import ElementDecision, ReviewSubmission
from tests.factories import UserFactory
from tests.ml.core_fixtures import fake_openai, openai_key  # noqa: F401 - fixtures
from tests.ml.vision_fixtures import tiny_grounding_dino_dir, tiny_sam_hf_dir  # noqa: F401 - fixtures
from tests.review.trust_flow import check_exports, edited_mask, export_all, grounded_triplet, import_and_preannotate, pipeline_config

pytestmark = [pytest.mark.django_db, pytest.mark.ml]

PARAPHRASE = "empty field"


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _review(client, *, edit) -> dict:
    """Take the next item, keep the pipeline's answer with ``edit(answer, triplet)`` applied, decide every
    element explicitly, and submit an approval. Returns the ``next`` payload."""
    item = client.post("/api/review/next/", {"dataset": "trust"}, format="json").json()
    base, triplet = item["base"], grounded_triplet(item["base"])
    answer = {"triplets": [], "ces": {"label": base["ces"]["label"]}, "rationale": base["rationale"]}
    decisions = []
    for t in base["triplets"]:
        kept = {"key": t["key"]}
        for role in ("background", "attribute", "subject"):
            if role in t:
                kept[role] = {**{k: t[role][k] for k in ("phrase", "box", "mask") if t[role].get(k)}, "status": "accepted"}
                decisions.append({"triplet_key": t["key"], "role": role, "action": "accept", "time_ms": 300})
        answer["triplets"].append(kept)
    mine = next(t for t in answer["triplets"] if t["key"] == triplet["key"])
    for d in edit(answer, mine):
        decisions = [x for x in decisions if (x["triplet_key"], x["role"]) != (mine["key"], d["role"])]
        decisions.append({"triplet_key": mine["key"], "time_ms": 900, **d})
    r = client.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                    {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                     "element_decisions": decisions, "time_spent_ms": 8000}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["unchecked"] == 0
    return item


def test_one_item_from_import_to_three_exports(tmp_path, fake_openai, openai_key, tiny_grounding_dino_dir,  # noqa: F811
                                                tiny_sam_hf_dir, django_capture_on_commit_callbacks):  # noqa: F811
    config = pipeline_config(fake_openai, openai_key, {"grounder": tiny_grounding_dino_dir, "segmenter": tiny_sam_hf_dir})
    image = import_and_preannotate(tmp_path, config, django_capture_on_commit_callbacks)

    # Two independent reviews: ann paraphrases the background, bob rejects the attribute.
    ann = UserFactory(username="ann", roles=["reviewer"])
    bob = UserFactory(username="bob", roles=["reviewer"])

    def paraphrase(answer, triplet):
        answer["ces"].update(confidence=0.9)
        triplet["background"].update(phrase=PARAPHRASE, status="edited")
        return [{"role": "background", "action": "edit_phrase", "after": PARAPHRASE}]

    def reject(answer, triplet):
        answer["ces"].update(confidence=0.7)
        triplet["attribute"]["status"] = "rejected"
        return [{"role": "attribute", "action": "reject"}]

    item = _review(_client(ann), edit=paraphrase)
    # bob holds the second slot: ann's pending review is nowhere in what he can read
    bob_client = _client(bob)
    assert PARAPHRASE not in bob_client.post("/api/review/next/", {"dataset": "trust"}, format="json").content.decode()
    _review(bob_client, edit=reject)
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    triplet = grounded_triplet(item["base"])
    key = triplet["key"]
    rejected_phrase = triplet["attribute"]["phrase"]

    # Adjudication through the API: the paraphrase and the rejection kept, the subject's mask redrawn,
    # no confidence given, so the reviewers' (0.9 and 0.7) is carried.
    ada = UserFactory(username="ada", roles=["adjudicator"])
    adj = _client(ada)
    queue = adj.get("/api/review/adjudication/").json()["results"]
    assert [row["id"] for row in queue] == [image.pk] and queue[0]["conflict"]["elements"] == 1
    payload = adj.get(f"/api/review/adjudication/{image.pk}/").json()
    reviews = {r["reviewer"]: r for r in payload["reviews"]}
    assert set(reviews) == {"ann", "bob"}
    answer = {k: reviews["ann"][k] for k in ("triplets", "rationale")}
    answer["ces"] = {"label": reviews["ann"]["ces"]["label"]}
    final_triplet = next(t for t in answer["triplets"] if t["key"] == key)
    final_triplet["attribute"]["status"] = "rejected"
    mask, mask_array = edited_mask()
    final_triplet["subject"].update(mask=mask, status="edited")
    r = adj.post(f"/api/review/adjudication/{image.pk}/", {"expected_version": payload["version"], "annotation": answer},
                 format="json")
    assert r.status_code == 201, r.json()
    image.refresh_from_db()
    assert image.status == ImageStatus.APPROVED

    final = Annotation.objects.get(image=image, kind=AnnotationKind.ADJUDICATION)
    assert final.extra["confidence_from"] == "reviews"
    assert set(final.extra["confidence_reviews"]) == set(ReviewSubmission.objects.values_list("annotation_id", flat=True))
    # one table holds both reviewers' element decisions and the adjudicator's
    rows = ElementDecision.objects.filter(image=image, triplet_key=key)
    assert set(rows.filter(kind="review", role="background").values_list("reviewer__username", "action")) == {
        ("ann", "edit_phrase"), ("bob", "accept")}
    assert set(rows.filter(kind="adjudication").values_list("role", "action")) == {
        ("background", "accept"), ("attribute", "reject"), ("subject", "edit_mask")}

    admin = UserFactory(username="boss", roles=["admin"])
    snapshots = export_all(admin, "trust", django_capture_on_commit_callbacks)
    check_exports(snapshots, SimpleNamespace(
        image_id=image.pk, key=key, adjudicator="ada", label=final.ces_label, confidence=0.8, distribution=None,
        phrases={"background": PARAPHRASE, "subject": triplet["subject"]["phrase"]},
        rejected=("attribute", rejected_phrase), mask=mask_array,
    ))
