"""One text and number policy at every boundary (``core.text``): each reproduction of
issue 13 answered 500 before, and is a 400 (or, for an id no row can have, a 404) with
nothing written now. Run on PostgreSQL and on SQLite."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.db import connection

from annotations.errors import InvalidAnnotation
from annotations.models import Annotation, Dataset
from exports.models import ExportSnapshot
from annotations.services import NewAnnotation, annotation_bulk_create, annotation_create
from annotations.validation import validate_annotation
from review.models import Disagreement, Draft, ElementDecision, Lease, LeaseState, ReviewSubmission
from tests.factories import annotation_payload
from tests.review.conftest import human_answer, image_in_review
from tests.security.conftest import send

pytestmark = pytest.mark.django_db

NUL = "text contains a NUL character"


def submit_url(item: dict) -> str:
    return f"/api/review/leases/{item['lease']['id']}/submit/"


def draft_url(item: dict) -> str:
    return f"/api/review/leases/{item['lease']['id']}/draft/"


def submit_body(item: dict, **changes) -> dict:
    return {"expected_version": item["version"], "decision": "approved", "annotation": human_answer(item), **changes}


def assert_nothing_written(item: dict) -> None:
    """The submit left no trace: no new version, submission, decision or disagreement, the lease still live."""
    assert Annotation.objects.filter(kind="human").count() == 0
    assert not ReviewSubmission.objects.exists() and not ElementDecision.objects.exists()
    assert not Disagreement.objects.exists()
    assert Lease.objects.get(pk=item["lease"]["id"]).state == LeaseState.ACTIVE


# --- query parameters and paths ---------------------------------------------------------

@pytest.mark.parametrize("url, field, api", [
    ("/review/disagreements/?model=%00", "model", False),
    ("/api/review/progress/?dataset=%00", "dataset", True),
    ("/api/annotations/?kind=%00", "kind", True),
    ("/exports/?dataset=%00", "dataset", False),
    ("/api/images/?dataset=sea%00", "dataset", True),
    ("/api/review/disagreements/?reviewer=%00", "reviewer", True),
    ("/django-admin/annotations/dataset/?q=%00", "q", False),
    ("/api/annotations/?a%00b=1", "a\\x00b", True),
    ("/api/exports/1/files/data%00.jsonl", "path", True),
    ("/exports/1/files/data%00.jsonl", "path", False),
])
def test_a_nul_in_a_query_parameter_or_path_is_a_400(client, boss, url, field, api):
    client.force_login(boss)
    response = client.get(url)
    assert response.status_code == 400
    if api:
        body = response.json()
        assert body["field"] == field and body["detail"].endswith(NUL)
    else:
        assert response["Content-Type"].startswith("text/plain") and NUL in response.content.decode()


@pytest.mark.parametrize("url, field, words", [
    ("/api/images/?created_after=0040-01-10T19:48:31-20:11", "created_after", "UTC offset -20:11 is beyond ±14:00"),
    ("/api/images/?created_before=0001-01-01T00:00:00%2B01:00", "created_before", "out of range"),
    ("/api/review/disagreements/?since=0040-01-10T19:48:31-20:11", "since", "UTC offset -20:11"),
    ("/api/review/disagreements/?until=0001-01-01T00:30:00%2B01:00", "until", "out of range"),
])
def test_a_datetime_no_database_stores_is_a_400_naming_the_parameter(client, boss, url, field, words):
    client.force_login(boss)
    response = client.get(url)
    assert response.status_code == 400
    assert response.json()["field"] == field and words in response.json()["detail"]


def test_a_datetime_with_a_real_offset_filters_in_utc(client, boss, dataset):
    image = image_in_review(dataset, annotators=False)
    client.force_login(boss)
    utc = image.created_at.replace(tzinfo=None)
    # The image's own moment written as UTC+05:30 and UTC-12:00 ("+" encoded in a query).
    for offset, shift in (("%2B05:30", timedelta(hours=5, minutes=30)), ("-12:00", -timedelta(hours=12))):
        at, later = (f"{utc + shift + extra:%Y-%m-%dT%H:%M:%S.%f}{offset}" for extra in (timedelta(0), timedelta(seconds=1)))
        assert [row["id"] for row in client.get(f"/api/images/?created_after={at}").json()["results"]] == [image.pk]
        assert client.get(f"/api/images/?created_after={later}").json()["results"] == []


def test_pages_refuse_bad_datetimes_and_ignore_odd_digits(client, boss, dataset):
    image = image_in_review(dataset)
    client.force_login(boss)
    response = client.get("/datasets/demo/?created_after=0040-01-10T19:48:31-20:11")
    assert response.status_code == 400 and "created_after: UTC offset -20:11" in response.content.decode()
    assert client.get("/review/disagreements/?until=9999-12-31").status_code == 400
    # "²".isdigit() is true, int("²") fails: such a version or page marker is no number.
    assert client.get(f"/review/images/{image.pk}/?version=²").status_code == 200
    assert client.get("/review/disagreements/?before=²").status_code == 200


@pytest.mark.parametrize("value, words", [
    ("0040-01-10T19:48:31-20:11", "UTC offset -20:11 is beyond ±14:00"),
    ("0001-01-01T00:00:00+01:00", "out of range"),
    ("2026-02-30", "must be an ISO date"),
    ("2026-01-01T00:00:00+25:00", "must be an ISO date"),
])
def test_an_export_filter_datetime_no_database_stores_is_a_400(api_client, admin_user, dataset, value, words):
    api_client.force_authenticate(admin_user)
    response = send(api_client, "post", "/api/exports/", {"dataset": "demo", "format": "coco", "filters": {"since": value}})
    assert response.status_code == 400
    assert response.json()["field"] == "since" and words in response.json()["detail"]
    assert not ExportSnapshot.objects.exists()


def test_an_export_until_a_bare_date_takes_that_whole_day_in_utc(api_client, admin_user, dataset):
    api_client.force_authenticate(admin_user)
    filters = {"since": "2026-01-31T10:00:00+02:00", "until": "2026-01-31"}
    response = send(api_client, "post", "/api/exports/", {"dataset": "demo", "format": "coco", "filters": filters})
    assert response.status_code == 201
    stored = ExportSnapshot.objects.get().filters
    assert (stored["since"], stored["until"]) == ("2026-01-31T08:00:00+00:00", "2026-02-01T00:00:00+00:00")


@pytest.mark.parametrize("method, url", [
    ("get", "/api/images/99999999999999999999/versions/"),
    ("get", "/api/images/99999999999999999999/"),
    ("get", "/api/images/9223372036854775808/"),  # 2**63: one past a BigAutoField
    ("get", "/api/annotations/99999999999999999999/"),
    ("put", "/api/review/leases/99999999999999999999/draft/"),
    ("post", "/api/review/leases/99999999999999999999/submit/"),
    ("get", "/api/review/adjudication/99999999999999999999/"),
    ("get", "/api/exports/99999999999999999999/"),
    ("get", "/review/images/99999999999999999999/"),
    ("get", "/images/99999999999999999999/file"),
    ("get", "/api/images/9223372036854775807/"),  # the largest id there can be: no such row
])
def test_an_id_beyond_the_database_range_is_a_404(client, boss, method, url):
    client.force_login(boss)
    kwargs = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 404


@pytest.mark.parametrize("url", ["/api/images/", "/api/review/adjudication/", "/api/review/disagreements/",
                                 "/api/annotations/", "/api/exports/"])
@pytest.mark.parametrize("position", [b"p=abc", b"p=%00", b"p=1.5.2&r=1"])
def test_a_tampered_cursor_is_an_invalid_cursor(client, boss, dataset, url, position):
    image_in_review(dataset)
    client.force_login(boss)
    response = client.get(f"{url}?cursor={base64.b64encode(position).decode()}")
    assert response.status_code == 404 and response.json() == {"detail": "Invalid cursor"}


# --- JSON bodies ----------------------------------------------------------------------

@pytest.mark.parametrize("place, field", [
    ("phrase", "annotation.triplets[0].subject.phrase"),
    ("rationale", "annotation.rationale"),
    ("reason", "reason"),
])
def test_a_lone_surrogate_in_a_submit_is_a_400_and_nothing_is_written(as_reviewer, item, place, field):
    body = submit_body(item, decision="rejected", reason="blurry")
    value = "boat \ud83d"
    if place == "phrase":
        body["annotation"]["triplets"][0]["subject"]["phrase"] = value
    elif place == "rationale":
        body["annotation"]["rationale"] = value
    else:
        body["reason"] = value
    response = send(as_reviewer, "post", submit_url(item), body)
    assert response.status_code == 400
    assert response.json() == {"detail": f"{field}: text contains an unpaired surrogate (\\ud83d)", "field": field}
    assert_nothing_written(item)


def test_a_nul_in_an_element_decision_is_a_400_and_nothing_is_written(as_reviewer, item):
    key = item["base"]["triplets"][0]["key"]
    decision = {"triplet_key": key, "role": "subject", "action": "edited", "before": "small\x00boat", "after": "boat", "time_ms": 5}
    response = send(as_reviewer, "post", submit_url(item), submit_body(item, element_decisions=[decision]))
    assert response.status_code == 400
    assert response.json() == {"detail": f"element_decisions[0].before: {NUL}", "field": "element_decisions[0].before"}
    assert_nothing_written(item)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_that_is_not_finite_is_a_400_naming_its_path(as_reviewer, item, number):
    body = submit_body(item)
    body["annotation"]["ces"]["confidence"] = "__number__"
    response = send(as_reviewer, "post", submit_url(item), json.dumps(body).replace('"__number__"', number))
    assert response.status_code == 400
    assert response.json()["field"] == "annotation.ces.confidence"
    assert "number is not finite" in response.json()["detail"]
    assert_nothing_written(item)


@pytest.mark.parametrize("blank", ["\u200b", "\u200b\u200c\u200d", " \ufeff ", "\u2060", "\u3164", "\u200e\u200f"])
def test_a_phrase_or_reason_of_invisible_characters_is_blank(as_reviewer, item, blank):
    body = submit_body(item)
    body["annotation"]["triplets"][0]["subject"]["phrase"] = blank
    response = send(as_reviewer, "post", submit_url(item), body)
    assert response.status_code == 400
    assert response.json() == {"detail": "triplets[0].subject.phrase: must be a non-empty string",
                               "field": "triplets[0].subject.phrase"}
    response = send(as_reviewer, "post", submit_url(item), submit_body(item, decision="rejected", reason=blank))
    assert response.status_code == 400 and response.json()["field"] == "reason"
    assert_nothing_written(item)


def test_a_key_with_a_nul_is_a_400_naming_it(as_reviewer, item):
    response = send(as_reviewer, "put", draft_url(item), {"payload": {"notes": {"a\x00": 1}}})
    assert response.status_code == 400
    assert response.json() == {"detail": f"payload.notes.a\\x00: the key's {NUL}", "field": "payload.notes.a\\x00"}


def test_json_nested_past_the_parser_is_a_400(as_reviewer, item):
    response = send(as_reviewer, "put", draft_url(item), '{"payload": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


# --- drafts -------------------------------------------------------------------------

def test_a_poison_draft_is_refused_and_next_keeps_answering(as_reviewer, item, dataset):
    response = send(as_reviewer, "put", draft_url(item), '{"payload": {"note": "\\ud83d"}}')
    assert response.status_code == 400
    assert response.json() == {"detail": "payload.note: text contains an unpaired surrogate (\\ud83d)", "field": "payload.note"}
    assert not Draft.objects.exists()
    again = as_reviewer.post("/api/review/next/", {"dataset": dataset.slug}, format="json")
    assert again.status_code == 200 and again.json()["lease"]["id"] == item["lease"]["id"]
    assert Lease.objects.count() == 1


@pytest.mark.parametrize("body", ['{"payload": {"note": "a\\u0000b"}}', '{"payload": [1, NaN]}'])
def test_a_draft_that_breaks_the_policy_is_a_400(as_reviewer, item, body):
    response = send(as_reviewer, "put", draft_url(item), body)
    assert response.status_code == 400 and response.json()["field"] in ("payload.note", "payload[1]")
    assert not Draft.objects.exists()


def test_a_draft_sent_as_a_form_is_checked_by_the_service_too(as_reviewer, item):
    """A multipart body carries the payload as JSON text, read by the serializer, not the
    JSON parser: the draft service applies the same policy."""
    response = as_reviewer.put(draft_url(item), {"payload": '{"note": "a\\u0000b"}'}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"detail": f"payload.note: {NUL}", "field": "payload.note"}
    assert not Draft.objects.exists()


def test_a_stored_unreadable_draft_counts_as_none(as_reviewer, item, dataset):
    """Defence in depth: a draft stored before the policy (SQLite kept ``\\ud83d``; PostgreSQL's
    jsonb never could) does not make ``next`` fail; the next save replaces it."""
    if connection.vendor != "sqlite":
        pytest.skip("only SQLite can hold such a draft; PostgreSQL's jsonb refuses it")
    lease = Lease.objects.get(pk=item["lease"]["id"])
    Draft.objects.create(image_id=lease.image_id, reviewer=lease.reviewer, lease=lease, payload={"note": "\ud83d"})
    again = as_reviewer.post("/api/review/next/", {"dataset": dataset.slug}, format="json")
    assert again.status_code == 200 and again.json()["draft"] is None
    assert as_reviewer.get(draft_url(item)).status_code == 404
    assert Lease.objects.count() == 1
    assert send(as_reviewer, "put", draft_url(item), {"payload": {"note": "ok"}}).status_code == 200
    assert as_reviewer.post("/api/review/next/", {"dataset": dataset.slug}, format="json").json()["draft"]["payload"] == {"note": "ok"}


# --- JSON stored as JSON by other writers ----------------------------------------------

@pytest.mark.parametrize("fields, field", [
    ({"critic": {"elements": [], "reasoning": "a\x00"}}, "critic.reasoning"),
    ({"raw_output": "{\"label\": \"fear\ud83d\"}"}, "raw_output"),
    ({"raw_distribution": {"fear": float("nan")}}, "raw_distribution.fear"),
    ({"extra": {"note": "\udc80"}}, "extra.note"),
])
def test_a_new_version_from_any_writer_follows_the_policy(dataset, fields, field):
    """The pipeline saves a model's output through annotation_create: the same policy holds it."""
    image = image_in_review(dataset, annotators=False)
    data = validate_annotation(annotation_payload(image.width, image.height), image.width, image.height)
    before = Annotation.objects.count()
    with pytest.raises(InvalidAnnotation) as caught:
        annotation_create(image=image, data=data, kind="model", author_name="gpt-4o", **fields)
    assert caught.value.field == field
    with pytest.raises(InvalidAnnotation):
        annotation_bulk_create(items=[NewAnnotation(image=image, data=data, kind="model", author_name="gpt-4o", **fields)])
    assert Annotation.objects.count() == before


# --- dataset settings and the admin -------------------------------------------------

def test_a_dataset_name_of_invisible_characters_is_blank(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    response = send(api_client, "post", "/api/datasets/", {"slug": "zw", "name": "\u200b\u2060"})
    assert response.status_code == 400 and "name" in json.dumps(response.json())
    assert not Dataset.objects.filter(slug="zw").exists()


ADMIN_FORM = ("slug=demo&reviews_per_item=1&overlap_fraction=0&lease_minutes=30&auto_accept_threshold=&audit_fraction=0.05"
              "&created_by=&description=&name=")


@pytest.mark.parametrize("name, saved", [
    ("a%00b", None),  # NUL: Django's form refuses it
    ("%ED%A0%BD", "\ufffd" * 3),  # the UTF-8 bytes of a lone surrogate: Django decodes each as U+FFFD
    ("%E2%80%8B", None),  # only a zero-width space: blank
    ("%F0%9F%8C%8A%20sea", "\U0001f30a sea"),
])
def test_the_dataset_admin_form_never_fails_on_odd_text(client, boss, dataset, name, saved):
    client.force_login(boss)
    url = f"/django-admin/annotations/dataset/{dataset.pk}/change/"
    response = client.post(url, ADMIN_FORM + name, content_type="application/x-www-form-urlencoded")
    assert response.status_code == (302 if saved else 200)
    dataset.refresh_from_db()
    assert dataset.name == (saved or "Demo")
