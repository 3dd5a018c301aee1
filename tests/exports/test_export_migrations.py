"""ExportSnapshot moved from the annotations app to exports: an existing database keeps its rows and permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType

from exports.models import ExportSnapshot
from tests.migrations import migrate

BEFORE = [("annotations", "0004_export_heartbeat_run_by")]


@pytest.mark.django_db(transaction=True)
def test_snapshots_and_their_permissions_survive_the_move():
    old_apps = migrate(BEFORE)
    try:
        OldUser = old_apps.get_model("auth", "User")
        OldPermission = old_apps.get_model("auth", "Permission")
        OldContentType = old_apps.get_model("contenttypes", "ContentType")
        user = OldUser.objects.create(username="exporter")
        dataset = old_apps.get_model("annotations", "Dataset").objects.create(slug="old", name="Old")
        snapshot = old_apps.get_model("annotations", "ExportSnapshot").objects.create(
            dataset=dataset, version=1, format="coco", status="complete", path="old/v0001-coco", created_by=user)
        content_type, _ = OldContentType.objects.get_or_create(app_label="annotations", model="exportsnapshot")
        permission, _ = OldPermission.objects.get_or_create(content_type=content_type, codename="view_exportsnapshot",
                                                            defaults={"name": "Can view export snapshot"})
        user.user_permissions.add(permission)
    finally:
        migrate()

    moved = ExportSnapshot.objects.select_related("dataset", "created_by").get(pk=snapshot.pk)
    assert (moved.dataset.slug, moved.version, moved.status, moved.created_by.username) == ("old", 1, "complete", "exporter")
    assert ContentType.objects.get(pk=content_type.pk).app_label == "exports"
    assert Permission.objects.get(pk=permission.pk).content_type.app_label == "exports"
    assert User.objects.get(pk=user.pk).has_perm("exports.view_exportsnapshot")
    assert ExportSnapshot.objects.create(dataset=moved.dataset, version=2, format="parquet").pk > moved.pk

