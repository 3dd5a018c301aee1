"""Limits that are stated and enforced (issue 13): dataset settings inside the database's
constraints, mask runs, draft size, and ownership checked before any expensive validation,
which runs outside the write transaction."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
from django.contrib import admin
from django.core import checks
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import RequestFactory
from rest_framework.test import APIClient

from annotations.models import Annotation, AnnotationKind, Dataset, ImageStatus
from core.masks import encode_mask, rle_string_runs
from review import queue, services
from review.models import Draft, Lease
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer, image_in_review

# --- dataset settings ------------------------------------------------------------

LEASE_MINUTES_MAX = 7 * 24 * 60  # a week, as docs/review-api.md states

OUT_OF_RANGE = [
    ("reviews_per_item", 0),
    ("reviews_per_item", -1),
    ("overlap_fraction", 1.5),
    ("overlap_fraction", -0.1),
    ("auto_accept_threshold", -1),
    ("auto_accept_threshold", 1.01),
    ("lease_minutes", 0),
    ("lease_minutes", LEASE_MINUTES_MAX + 1),
    ("lease_minutes", 99999999999),
]


@pytest.fixture
def as_admin(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    return api_client


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_patching_a_dataset_setting_out_of_range_is_a_400_naming_it_and_writes_nothing(as_admin, name, value):
    dataset = DatasetFactory(slug="demo")
    before = Dataset.objects.filter(pk=dataset.pk).values().get()
    r = as_admin.patch("/api/datasets/demo/", {name: value}, format="json")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["field"] == name and name in body["detail"], body
    assert Dataset.objects.filter(pk=dataset.pk).values().get() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_creating_a_dataset_with_a_setting_out_of_range_is_a_400_and_creates_nothing(as_admin, name, value):
    r = as_admin.post("/api/datasets/", {"slug": "new", "name": "New", name: value}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["field"] == name
    assert not Dataset.objects.filter(slug="new").exists()


@pytest.mark.django_db
def test_the_bounds_themselves_are_accepted_and_the_longest_lease_still_leases(as_admin, reviewer, api_client):
    dataset = DatasetFactory(slug="demo")
    image_in_review(dataset)
    r = as_admin.patch("/api/datasets/demo/", {"reviews_per_item": 1, "overlap_fraction": 1.0, "auto_accept_threshold": 0,
                                              "lease_minutes": LEASE_MINUTES_MAX}, format="json")
    assert r.status_code == 200, r.content
    api_client.force_authenticate(reviewer)
    assert api_client.post("/api/review/next/", {"dataset": "demo"}, format="json").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_the_admin_form_refuses_the_same_values(admin_user, name, value):
    dataset = DatasetFactory(slug="demo")
    model_admin = admin.site._registry[Dataset]
    request = RequestFactory().post("/")
    request.user = admin_user
    form_class = model_admin.get_form(request, dataset)
    data = {"slug": "demo", "name": "Demo", "description": "", "reviews_per_item": 1, "overlap_fraction": 0,
            "lease_minutes": 30, "auto_accept_threshold": "", name: value}
    form = form_class(data=data, instance=dataset)
    assert not form.is_valid()
    assert name in form.errors


@pytest.mark.django_db
def test_the_database_refuses_a_lease_longer_than_the_maximum():
    DatasetFactory(slug="demo")
    with pytest.raises(IntegrityError), transaction.atomic():
        Dataset.objects.filter(slug="demo").update(lease_minutes=LEASE_MINUTES_MAX + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Dataset.objects.filter(slug="demo").update(lease_minutes=0)


def _migrate(targets=None):
    """Migrate to ``targets`` (default: the latest migrations); the historical apps at that point."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_brings_leases_set_before_into_the_range():
    old_apps = _migrate([("annotations", "0005_move_exportsnapshot_to_exports")])
    try:
        OldDataset = old_apps.get_model("annotations", "Dataset")
        for slug, minutes in (("zero", 0), ("huge", 20_000), ("fine", 45)):
            OldDataset.objects.create(slug=slug, name=slug, lease_minutes=minutes)
    finally:
        _migrate()
    assert dict(Dataset.objects.values_list("slug", "lease_minutes")) == {"zero": 1, "huge": LEASE_MINUTES_MAX, "fine": 45}


def test_a_default_lease_outside_the_bounds_is_a_configuration_error(settings):
    settings.EMOVERSE_DEFAULT_LEASE_MINUTES = LEASE_MINUTES_MAX + 1
    errors = [e for e in checks.run_checks() if e.id == "annotations.E001"]
    assert errors and "EMOVERSE_LEASE_MINUTES" in errors[0].msg
    settings.EMOVERSE_DEFAULT_LEASE_MINUTES = 30
    assert not [e for e in checks.run_checks() if e.id == "annotations.E001"]


# --- masks -----------------------------------------------------------------------


def _stripes(width: int, height: int) -> np.ndarray:
    """A mask of alternating rows: two runs per column."""
    mask = np.zeros((height, width), dtype=bool)
    mask[::2, :] = True
    return mask


def _next(client, slug="demo"):
    r = client.post("/api/review/next/", {"dataset": slug}, format="json")
    assert r.status_code == 200, r.content
    return r.json()


def _leased_item(client, username: str = "ann") -> dict:
    """A dataset ``demo`` with one item in review, leased through ``client`` by a new reviewer."""
    client.force_authenticate(UserFactory(username=username, roles=["reviewer"]))
    image_in_review(DatasetFactory(slug="demo"))
    return _next(client)


def _submit_url(item) -> str:
    return f"/api/review/leases/{item['lease']['id']}/submit/"


def _draft_url(item) -> str:
    return f"/api/review/leases/{item['lease']['id']}/draft/"


def _submit_with_subject_mask(client, item, mask: dict):
    answer = human_answer(item)
    answer["triplets"][0]["subject"]["mask"] = mask
    return client.post(_submit_url(item), {"expected_version": item["version"], "decision": "approved",
                                           "annotation": answer}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["compressed", "uncompressed"])
def test_a_mask_with_more_runs_than_the_limit_is_a_400_and_writes_nothing(api_client, settings, form):
    settings.EMOVERSE_MAX_MASK_RUNS = 100
    item = _leased_item(api_client)
    width, height = item["image"]["width"], item["image"]["height"]
    mask = encode_mask(_stripes(width, height))  # 64 columns x 48 rows: 3,073 runs
    if form == "uncompressed":
        mask = {"size": mask["size"], "counts": [0] + [1] * (width * height)}
    versions = Annotation.objects.count()
    r = _submit_with_subject_mask(api_client, item, mask)
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["field"] == "triplets[0].subject.mask", body
    assert "runs" in body["detail"] and "100" in body["detail"], body
    assert Annotation.objects.count() == versions


@pytest.mark.django_db
def test_a_huge_counts_string_is_refused_without_being_parsed(api_client, settings):
    settings.EMOVERSE_MAX_MASK_RUNS = 1000
    item = _leased_item(api_client)
    mask = {"size": [48, 64], "counts": "1" * 200_000}  # 200,000 one-character runs
    with mock.patch("annotations.validation.rle_string_covers") as parse:
        r = _submit_with_subject_mask(api_client, item, mask)
    assert r.status_code == 400 and "runs" in r.json()["detail"], r.content
    parse.assert_not_called()


@pytest.mark.django_db
def test_a_mask_with_as_many_runs_as_the_limit_is_kept(api_client, settings):
    item = _leased_item(api_client)
    mask = encode_mask(_stripes(item["image"]["width"], item["image"]["height"]))
    settings.EMOVERSE_MAX_MASK_RUNS = len(rle_string_runs(mask["counts"]))  # 3,073: a leading empty run
    r = _submit_with_subject_mask(api_client, item, mask)
    assert r.status_code == 201, r.content


# --- drafts ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_draft_over_the_size_limit_is_refused_and_the_saved_one_kept(api_client, settings):
    settings.EMOVERSE_MAX_DRAFT_BYTES = 1000
    item = _leased_item(api_client)
    assert api_client.put(_draft_url(item), {"payload": {"note": "small"}}, format="json").status_code == 200
    r = api_client.put(_draft_url(item), {"payload": {"note": "x" * 2000}}, format="json")
    assert r.status_code == 413, r.content
    body = r.json()
    assert body["field"] == "payload" and "1,000" in body["detail"], body
    assert Draft.objects.get().payload == {"note": "small"}
    assert _next(api_client)["draft"]["payload"] == {"note": "small"}


@pytest.mark.django_db
def test_the_draft_limit_counts_utf8_bytes_of_the_json(api_client, settings):
    settings.EMOVERSE_MAX_DRAFT_BYTES = 1000
    item = _leased_item(api_client)
    fits = {"note": "é" * 480}  # 960 bytes of text, 973 of JSON
    assert len(json.dumps(fits, ensure_ascii=False, separators=(",", ":")).encode()) <= 1000
    assert api_client.put(_draft_url(item), {"payload": fits}, format="json").status_code == 200
    assert api_client.put(_draft_url(item), {"payload": {"note": "é" * 520}}, format="json").status_code == 413


@pytest.mark.django_db
def test_an_oversize_draft_stored_before_the_limit_is_not_sent_back_and_the_reviewer_is_told(api_client, settings):
    """A draft saved before the limit existed (written straight to the table, as the old code
    stored a 19 MB one) is not sent with ``next`` nor by ``GET draft/``: ``next`` says why, the
    reviewer works on the current version, and their next save replaces it."""
    item = _leased_item(api_client)
    big = {"image_id": item["image"]["id"], "note": "x" * 5000}
    Draft.objects.create(image_id=item["image"]["id"], reviewer=Lease.objects.get().reviewer, payload=big)
    settings.EMOVERSE_MAX_DRAFT_BYTES = 1000
    answer = api_client.post("/api/review/next/", {"dataset": item["lease"]["dataset"]}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["draft"] is None and "x" * 100 not in answer.content.decode()
    assert "larger than the draft limit of 1,000 bytes" in body["draft_notice"]
    assert api_client.get(_draft_url(item)).status_code == 404
    assert Draft.objects.get().payload == big  # kept, not lost, until the next save
    assert api_client.put(_draft_url(item), {"payload": {"note": "small"}}, format="json").status_code == 200
    again = _next(api_client)
    assert again["draft"]["payload"] == {"note": "small"} and again["draft_notice"] == ""


# --- authorisation before expensive work -------------------------------------------


@pytest.fixture
def as_reviewer(api_client, reviewer):
    api_client.force_authenticate(reviewer)
    return api_client


@pytest.fixture
def someone_elses_lease(db) -> dict:
    """The ``next`` answer of an item leased to another reviewer."""
    return _leased_item(APIClient(), "owner")


def test_submit_on_another_reviewers_lease_is_403_before_the_annotation_is_validated(as_reviewer, someone_elses_lease):
    item = someone_elses_lease
    mask = encode_mask(_stripes(item["image"]["width"], item["image"]["height"]))
    with mock.patch("review.services.validate_annotation") as validate:
        r = _submit_with_subject_mask(as_reviewer, item, mask)
    assert r.status_code == 403, r.content
    validate.assert_not_called()
    assert Lease.objects.get(pk=item["lease"]["id"]).state == "active"


def test_a_draft_on_another_reviewers_lease_is_403_before_its_size_is_measured(as_reviewer, someone_elses_lease, settings):
    settings.EMOVERSE_MAX_DRAFT_BYTES = 10
    r = as_reviewer.put(_draft_url(someone_elses_lease), {"payload": {"note": "x" * 100}}, format="json")
    assert r.status_code == 403, r.content


@pytest.mark.django_db
def test_submit_of_a_submitted_lease_is_409_before_the_annotation_is_validated(api_client):
    item = _leased_item(api_client)
    body = {"expected_version": item["version"], "decision": "approved", "annotation": human_answer(item)}
    assert api_client.post(_submit_url(item), body, format="json").status_code == 201
    with mock.patch("review.services.validate_annotation") as validate:
        r = api_client.post(_submit_url(item), body, format="json")
    assert r.status_code == 409 and r.json()["changes"]["already_submitted"] is True
    validate.assert_not_called()


def _spy_atomic(module, name: str, seen: list):
    """Patch ``module.name`` with a wrapper that records whether a transaction was open when called.
    Meaningful only outside the test's own transaction (``transaction=True``)."""
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(connection.in_atomic_block)
        return real(*args, **kwargs)

    return mock.patch.object(module, name, spy)


@pytest.mark.django_db(transaction=True)
def test_submit_validates_the_annotation_before_the_write_transaction_opens(api_client):
    item = _leased_item(api_client)
    seen: list[bool] = []
    with _spy_atomic(services, "validate_annotation", seen):
        r = api_client.post(_submit_url(item), {"expected_version": item["version"], "decision": "approved",
                                                "annotation": human_answer(item)}, format="json")
    assert r.status_code == 201, r.content
    assert seen == [False]


@pytest.mark.django_db(transaction=True)
def test_adjudication_validates_the_annotation_before_the_write_transaction_opens(api_client):
    image = image_in_review(DatasetFactory(slug="demo"))
    image.status = ImageStatus.ADJUDICATION
    image.save(update_fields=["status"])
    api_client.force_authenticate(UserFactory(username="judge", roles=["adjudicator"]))
    item = api_client.get(f"/api/review/adjudication/{image.pk}/").json()
    seen: list[bool] = []
    with _spy_atomic(services, "validate_annotation", seen):
        r = api_client.post(f"/api/review/adjudication/{image.pk}/",
                            {"expected_version": item["version"], "annotation": human_answer(item)}, format="json")
    assert r.status_code == 201, r.content
    assert seen == [False]
    assert Annotation.objects.filter(image=image, kind=AnnotationKind.ADJUDICATION).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_draft_is_measured_before_the_write_transaction_opens(api_client):
    item = _leased_item(api_client)
    seen: list[bool] = []
    with _spy_atomic(queue, "draft_check_size", seen):
        r = api_client.put(_draft_url(item), {"payload": {"a": 1}}, format="json")
    assert r.status_code == 200, r.content
    assert seen == [False]
