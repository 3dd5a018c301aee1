"""The PostgreSQL submit (``review.submit_postgres``: one ``review_submit`` statement) writes
exactly what the Python path (``review.services._review_write``) writes, for rich answers;
and concurrent submits lose nothing and double nothing. Skipped on SQLite, which has only the
Python path."""

from __future__ import annotations

import itertools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from django.db import connection, transaction

from annotations.errors import VersionConflict
from annotations.models import Annotation, AnnotationKind, Element, Image
from annotations.phrase_embeddings import phrase_embeddings_store, phrase_model_name
from core.alignment import phrase_key
from review import queue, selectors, services, submit_postgres
from review.models import Disagreement, Draft, ElementDecision, Lease, ReviewPlan, ReviewSubmission
from tests.factories import DatasetFactory, UserFactory, make_annotation, rect_mask_rle
from tests.review.conftest import accept_each, human_answer, image_in_review


class Rollback(Exception):
    pass


def rich_answer(payload: dict, *, label: str = "sadness") -> tuple[dict, list[dict]]:
    """Every kind of act: the label changed, the subject's box and mask redrawn, the attribute
    rejected, the background rephrased, a triplet added (no key), and the decisions that say so."""
    answer = human_answer(payload, label=label)
    first = answer["triplets"][0]
    key = first["key"]
    decisions = []
    before_box = first["subject"]["box"]
    first["subject"].update(box=[10, 8, 40, 30], mask=rect_mask_rle(64, 48, (10, 8, 40, 30)), status="edited")
    decisions.append({"triplet_key": key, "role": "subject", "action": "edit_box", "before": before_box,
                      "after": [10, 8, 40, 30], "time_ms": 700})
    decisions.append({"triplet_key": key, "role": "subject", "action": "edit_mask", "before": None,
                      "after": {"note": "brush", "strokes": [1, 2, 3]}, "time_ms": 1200})
    first["attribute"]["status"] = "rejected"
    decisions.append({"triplet_key": key, "role": "attribute", "action": "reject", "before": {"phrase": "dark, churning"},
                      "time_ms": 300})
    first["background"].update(phrase="rough open water", status="edited")
    decisions.append({"triplet_key": key, "role": "background", "action": "edit_phrase", "before": "stormy sea",
                      "after": "rough open water", "time_ms": 900})
    answer["triplets"].append({"subject": {"phrase": "a gull", "box": [50, 2, 60, 12], "status": "added"},
                               "background": {"phrase": "grey sky", "status": "added"}})
    return answer, decisions


def written(image: Image) -> dict:
    """What the newest human version's submit wrote, without ids and times."""
    version = Annotation.objects.filter(image=image, kind=AnnotationKind.HUMAN).order_by("-version").first()
    image.refresh_from_db()
    fields = ("version", "parent_id", "kind", "author_name", "author_user_id", "is_current", "decision", "decision_reason",
              "ces_label", "ces_confidence", "ces_distribution", "ces_raw_distribution", "des", "rationale", "prompt_version",
              "pipeline_version", "raw_output", "critic", "extra", "import_run_id")
    submission = ReviewSubmission.objects.get(annotation=version)
    return {
        "annotation": {f: getattr(version, f) for f in fields},
        "current": sorted(Annotation.objects.filter(image=image, is_current=True).values_list("kind", "author_name", "version")),
        "elements": list(Element.objects.filter(triplet__annotation=version).order_by("triplet__index", "role").values_list(
            "triplet__index", "triplet__key", "role", "phrase", "status", "x0", "y0", "x1", "y1", "box_score", "mask_counts",
            "mask_height", "mask_width", "mask_score")),
        "submission": (submission.lease_id, submission.dataset_id, submission.reviewer_id, submission.decision,
                       submission.time_spent_ms),
        "lease": tuple(Lease.objects.filter(pk=submission.lease_id).values_list("state", "slot").get()),
        "decisions": list(ElementDecision.objects.filter(annotation=version, submission=submission).order_by("id").values_list(
            "kind", "image_id", "reviewer_id", "triplet_key", "role", "action", "before", "after", "time_ms")),
        "disagreements": list(Disagreement.objects.filter(annotation=version).order_by("id").values_list(
            "image_id", "dataset_id", "model_name", "model_annotation_id", "field", "triplet_key", "role", "model_value",
            "model_confidence", "human_value", "box_iou", "mask_iou", "paired_by", "reviewer_id", "kind")),
        "plan": tuple(ReviewPlan.objects.filter(image=image).values_list("required_reviews", "submitted_reviews").get()),
        "drafts": Draft.objects.filter(image=image).count(),
        "image": (image.status, image.label),
    }


def submit_both_ways(monkeypatch, lease, reviewer, payload, answer, decisions, *, read_with_phrases=False,
                     **kwargs) -> tuple[dict, dict]:
    """Submit on the one-statement path, note what was written, roll back; then the same on the Python path.
    ``read_with_phrases``: the lease is read as the submit API reads it, with the stored embeddings of the
    answer's phrases (``lease_for_submit(pk, answer, decisions)``)."""
    image = Image.objects.get(pk=lease.image_id)
    out = {}
    used = []
    real = services.submit_one_statement

    def spy(**kw):
        result = real(**kw)
        used.append(result is not None)
        return result

    for way in ("one statement", "python"):
        ids = (uuid.UUID(int=i) for i in itertools.count(1))  # the same keys for added triplets on both paths
        monkeypatch.setattr(uuid, "uuid4", lambda ids=ids: next(ids))
        monkeypatch.setattr(services, "submit_one_statement", spy if way == "one statement" else lambda **kw: None)
        try:
            with transaction.atomic():
                queue.draft_save(lease=lease, reviewer=reviewer, payload={"half": "done"})
                read = services.lease_for_submit(lease.pk, answer, decisions) if read_with_phrases else lease
                services.review_submit(lease=read, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                                       annotation=answer, element_decisions=decisions, time_spent_ms=4321,
                                       fresh=read_with_phrases, **kwargs)
                out[way] = written(image)
                raise Rollback
        except Rollback:
            pass
    assert used == [True], "the one-statement path did not write"
    return out["one statement"], out["python"]


@pytest.mark.postgres
@pytest.mark.parametrize("annotators", [True, False])
def test_one_statement_writes_what_the_python_path_writes(db, on_postgres, monkeypatch, reviewer, annotators):
    dataset = DatasetFactory(slug="same")
    image_in_review(dataset, annotators=annotators)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    answer, decisions = rich_answer(payload)
    fast, python = submit_both_ways(monkeypatch, lease, reviewer, payload, answer, decisions, reason="")
    assert fast == python
    assert len(fast["disagreements"]) > (8 if annotators else 4)
    assert {row[4] for row in fast["disagreements"]} >= {"ces_label", "element_phrase", "element_rejected", "box", "mask",
                                                         "element_added"}
    assert fast["drafts"] == 0 and fast["image"] == ("approved", "sadness") and fast["lease"][0] == "submitted"


@pytest.mark.postgres
@pytest.mark.parametrize("stored", ["the answer's", "also the annotators'"])
def test_embeddings_read_with_the_lease_pair_as_those_looked_up_after(db, on_postgres, monkeypatch, reviewer,
                                                                      django_assert_num_queries, stored):
    """The submit API reads the stored embeddings of the answer's phrases (and of those its decisions
    replaced) with the lease; the disagreement rows are those of the Python path, which looks every
    phrase up itself. Phrases of the model answers that the person did not send are looked up after."""
    dataset = DatasetFactory(slug="same")
    image_in_review(dataset, annotators=True)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    answer, decisions = rich_answer(payload)
    pairs = [("stormy sea", "rough open water"), ("small boat", "a gull"), ("dark, churning", "grey sky")]
    if stored != "the answer's":
        ours = {p for pair in pairs for p in pair}
        theirs = sorted({e["phrase"] for a in payload["annotators"] for t in a["triplets"] for e in t.values()
                         if isinstance(e, dict) and "phrase" in e} - ours)
        pairs += [(phrase, f"other words {n}") for n, phrase in enumerate(theirs)]
    phrases = [p for pair in pairs for p in pair]
    phrase_embeddings_store(model_name=phrase_model_name(), phrases=phrases, vectors=np.repeat(np.eye(len(pairs)), 2, axis=0))
    fast, python = submit_both_ways(monkeypatch, lease, reviewer, payload, answer, decisions, read_with_phrases=True)
    assert fast == python
    assert "meaning" in {row[12] for row in fast["disagreements"]}
    # What the read looked up, and what is left for one more query: the annotators' phrases.
    read = services.lease_for_submit(lease.pk, answer, decisions)
    looked_up, found = read.__dict__[submit_postgres._VECTORS]
    assert {"stormy sea", "rough open water", "small boat", "a gull", "grey sky"} <= looked_up
    assert set(found) == {p for p in phrases if p in looked_up}
    theirs = {phrase_key(e["phrase"]) for a in payload["annotators"] for t in a["triplets"] for e in t.values()
              if isinstance(e, dict) and "phrase" in e} - looked_up
    assert theirs
    with django_assert_num_queries(0):
        vectors = submit_postgres._phrase_vectors(looked_up, read.__dict__[submit_postgres._VECTORS])
    assert vectors.cosine("stormy sea", "rough open water") == pytest.approx(1.0)
    with django_assert_num_queries(1):
        vectors = submit_postgres._phrase_vectors(looked_up | theirs, read.__dict__[submit_postgres._VECTORS])
    assert all((p in vectors) == (stored != "the answer's") for p in theirs)
    assert vectors.cosine("stormy sea", "rough open water") == pytest.approx(1.0)


@pytest.mark.postgres
@pytest.mark.parametrize("second_label", ["sadness", "awe"])
def test_the_last_of_overlapping_reviews_is_resolved_the_same_way(db, on_postgres, monkeypatch, make_reviewer, second_label):
    """K = 2: the second review decides between approval (the reviews agree) and adjudication."""
    dataset = DatasetFactory(slug="overlap", reviews_per_item=2, overlap_fraction=1.0)
    image_in_review(dataset)
    first, second = make_reviewer("r1"), make_reviewer("r2")
    leases = [queue.lease_next(dataset=dataset, reviewer=r) for r in (first, second)]
    payloads = [selectors.lease_payload(lease) for lease in leases]
    answer, decisions = rich_answer(payloads[0])
    services.review_submit(lease=leases[0], reviewer=first, expected_version=payloads[0]["version"], decision="approved",
                           annotation=answer, element_decisions=decisions)
    answer, decisions = rich_answer(payloads[1], label=second_label)
    fast, python = submit_both_ways(monkeypatch, leases[1], second, payloads[1], answer, decisions)
    assert fast == python
    assert fast["plan"] == (2, 2)
    assert fast["image"][0] == ("approved" if second_label == "sadness" else "adjudication")


@pytest.mark.postgres
def test_the_reviewers_earlier_version_stops_being_current(db, on_postgres, monkeypatch, reviewer):
    """The reviewer already has a current version of the image (written through the annotations API):
    the submit's version replaces it, on the one-statement path as on the Python path."""
    dataset = DatasetFactory(slug="again")
    image = image_in_review(dataset, annotators=False)
    earlier = make_annotation(image, kind=AnnotationKind.HUMAN, author_name=reviewer.get_username(), author_user=reviewer)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    answer, decisions = rich_answer(payload)
    fast, python = submit_both_ways(monkeypatch, lease, reviewer, payload, answer, decisions)
    assert fast == python
    mine = [c for c in fast["current"] if c[1] == reviewer.get_username()]
    assert mine == [(AnnotationKind.HUMAN, reviewer.get_username(), earlier.version + 1)]


@pytest.mark.postgres
def test_answers_read_with_the_lease_that_changed_before_the_submit_write_nothing(db, on_postgres, reviewer):
    """The answers read with the lease (``lease_for_submit``) are compared again under the lock: a
    model answer added meanwhile is a version conflict, and nothing is written."""
    dataset = DatasetFactory(slug="stale")
    image = image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    read = services.lease_for_submit(lease.pk)
    make_annotation(image, author_name="gpt-4o")
    answer, decisions = rich_answer(payload)
    with pytest.raises(VersionConflict):
        services.review_submit(lease=read, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=answer, element_decisions=decisions, fresh=True)
    assert not Annotation.objects.filter(image=image, kind=AnnotationKind.HUMAN).exists()
    assert not Disagreement.objects.filter(image=image).exists()


@pytest.fixture
def fast_users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_together(calls):
    """Run the calls at the same moment, each thread on its own connection; their results or errors."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        try:
            barrier.wait()
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.postgres
def test_concurrent_submits_lose_nothing_and_double_nothing(transactional_db, on_postgres, fast_users):
    """Eight reviewers submit at once (K = 1); two reviewers submit the two reviews of one K = 2 item
    at once; one reviewer submits the same lease from two tabs at once."""
    dataset = DatasetFactory(slug="busy")
    for _ in range(8):
        image_in_review(dataset, annotators=False)
    reviewers = [UserFactory(username=f"c{i}", roles=["reviewer"]) for i in range(8)]
    leases = [queue.lease_next(dataset=dataset, reviewer=r) for r in reviewers]
    payloads = [selectors.lease_payload(lease) for lease in leases]

    def submit(lease, reviewer, payload):
        return lambda: services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"],
                                              decision="approved", annotation=human_answer(payload),
                                              element_decisions=accept_each(human_answer(payload)))

    results = run_together([submit(*args) for args in zip(leases, reviewers, payloads)])
    assert all(isinstance(r, services.SubmitResult) for r in results), results
    assert ReviewSubmission.objects.count() == 8 and len({r.annotation.pk for r in results}) == 8
    assert set(Image.objects.filter(dataset=dataset).values_list("status", flat=True)) == {"approved"}

    overlap = DatasetFactory(slug="pair", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(overlap, annotators=False)
    pair = reviewers[:2]
    leases = [queue.lease_next(dataset=overlap, reviewer=r) for r in pair]
    payloads = [selectors.lease_payload(lease) for lease in leases]
    results = run_together([submit(*args) for args in zip(leases, pair, payloads)])
    assert all(isinstance(r, services.SubmitResult) for r in results), results
    image.refresh_from_db()
    assert image.status == "approved" and ReviewPlan.objects.get(image=image).submitted_reviews == 2
    assert ReviewSubmission.objects.filter(image=image).count() == 2

    image = image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewers[0])
    payload = selectors.lease_payload(lease)
    results = run_together([submit(lease, reviewers[0], payload), submit(lease, reviewers[0], payload)])
    assert sorted(type(r).__name__ for r in results) == ["SubmitResult", "VersionConflict"], results
    conflict = next(r for r in results if isinstance(r, VersionConflict))
    assert conflict.changes["already_submitted"] is True
    assert ReviewSubmission.objects.filter(image=image).count() == 1
    assert Annotation.objects.filter(image=image, kind=AnnotationKind.HUMAN).count() == 1
    assert ReviewPlan.objects.get(image=image).submitted_reviews == 1


@pytest.mark.postgres
def test_the_lease_read_in_one_query_is_the_orms(db, on_postgres, reviewer):
    """lease_read gives the lease, image, dataset and review plan with every field's value and type
    as the ORM reads them (each field read back from jsonb)."""
    dataset = DatasetFactory(slug="same")
    image_in_review(dataset, annotators=True)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    Image.objects.filter(pk=lease.image_id).update(confidence=1, agreement=0.25, label="awe")
    read = services.lease_for_submit(lease.pk, {}, [])
    orm = Lease.objects.select_related("image__dataset", "image__review_plan").get(pk=lease.pk)
    for got, want in ((read, orm), (read.image, orm.image), (read.image.dataset, orm.image.dataset),
                      (read.image.review_plan, orm.image.review_plan)):
        for f in type(want)._meta.concrete_fields:
            a, b = getattr(got, f.attname), getattr(want, f.attname)
            assert (a, type(a)) == (b, type(b)), (type(want).__name__, f.name)


def test_the_phrases_looked_up_with_the_lease_are_read_from_the_body_as_sent():
    """Only strings a phrase can be, normalised; none at all past MAX_READ_PHRASES (looked up after validation)."""
    answer = {"triplets": [{"background": {"phrase": " Stormy  Sea "}, "subject": {"phrase": "x" * 301},
                            "attribute": {"phrase": 3}}, "junk"]}
    assert submit_postgres.submitted_phrases(answer, [{"before": "Rough", "after": [1, 2]}, "junk"]) == {"stormy sea", "rough"}
    assert submit_postgres.submitted_phrases(None, None) == frozenset()
    many = {"triplets": [{"background": {"phrase": f"p{i}"}} for i in range(submit_postgres.MAX_READ_PHRASES + 1)]}
    assert submit_postgres.submitted_phrases(many) == frozenset()
    many["triplets"].pop()
    assert len(submit_postgres.submitted_phrases(many)) == submit_postgres.MAX_READ_PHRASES
