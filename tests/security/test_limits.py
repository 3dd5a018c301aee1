"""Limits that are stated and enforced (issue 13): dataset settings inside the database's constraints."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.core import checks
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import RequestFactory

from annotations.models import Dataset
from tests.factories import DatasetFactory
from tests.review.conftest import image_in_review

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
