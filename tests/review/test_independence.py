"""Independent reviews: while a user holds, or may still be given, a review slot on an image,
no endpoint or page shows them another person's review of it; nobody adjudicates an image
they reviewed; adjudication answers only for images waiting for it.

The scene: a dataset that wants two reviews per image. ``zed`` reviewed the image and wrote
:data:`MARKER` into a phrase and the rationale. ``duo`` is a reviewer *and* an adjudicator
and holds the second slot. The marker must never reach ``duo`` until they submitted.
"""

from __future__ import annotations

import io
import re
import zipfile
from types import SimpleNamespace

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from annotations.models import Annotation, ImageStatus
from review import queue, selectors, services, visibility
from review.models import Lease
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db

MARKER = "zebra-marker-7f3"
DUAL = ("reviewer", "adjudicator")
EVERY_ROLE = ("reviewer", "adjudicator", "researcher", "admin")


def review(dataset, user, *, label: str, phrase: str | None = None):
    """``user`` takes the next item of ``dataset`` and submits an approval with ``label``
    (and ``phrase`` as the first subject and in the rationale)."""
    lease = queue.lease_next(dataset=dataset, reviewer=user)
    payload = selectors.lease_payload(lease)
    answer = human_answer(payload, label=label)
    if phrase:
        answer["triplets"][0]["subject"].update(phrase=phrase, status="edited")
        answer["rationale"] = f"{phrase} decides it"
    return services.review_submit(lease=lease, reviewer=user, expected_version=payload["version"], decision="approved",
                                  annotation=answer)


@pytest.fixture
def scene(make_reviewer):
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    zed = make_reviewer("zed")
    other = review(dataset, zed, label="awe", phrase=MARKER).annotation
    duo = UserFactory(username="duo", roles=list(DUAL))
    lease = queue.lease_next(dataset=dataset, reviewer=duo)
    assert lease.image_id == image.pk
    return SimpleNamespace(dataset=dataset, image=image, zed=zed, other=other, duo=duo, lease=lease)


def text(response) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body.decode("utf-8", errors="replace")


# --- the known leaks, one test each ------------------------------------------------


def test_the_annotations_api_hides_the_other_review_from_a_slot_holder(scene, api_client):
    api_client.force_authenticate(scene.duo)
    for url in (f"/api/annotations/?image={scene.image.pk}&kind=human", "/api/annotations/",
                f"/api/annotations/?image={scene.image.pk}"):
        r = api_client.get(url)
        assert r.status_code == 200 and MARKER not in text(r), url
    assert api_client.get(f"/api/annotations/?image={scene.image.pk}&kind=human").json()["results"] == []
    assert api_client.get(f"/api/annotations/{scene.other.pk}/").status_code == 404


def test_the_versions_api_hides_the_other_review_from_a_slot_holder(scene, api_client):
    api_client.force_authenticate(scene.duo)
    r = api_client.get(f"/api/images/{scene.image.pk}/versions/")
    assert r.status_code == 200 and MARKER not in text(r)
    assert {row["kind"] for row in r.json()} == {"model"}


def test_adjudication_answers_nothing_while_the_image_is_in_review(scene, api_client, adjudicator):
    for user in (scene.duo, adjudicator):
        api_client.force_authenticate(user)
        r = api_client.get(f"/api/review/adjudication/{scene.image.pk}/")
        assert r.status_code == 404 and MARKER not in text(r)
        r = api_client.post(f"/api/review/adjudication/{scene.image.pk}/",
                            {"expected_version": 0, "annotation": {"triplets": [], "ces": {"label": "awe"}}}, format="json")
        assert r.status_code == 403 and MARKER not in text(r) and "zed" not in text(r)
    assert Annotation.objects.filter(image=scene.image, kind="adjudication").count() == 0


def test_the_image_page_hides_the_other_review_from_a_slot_holder(scene, client):
    client.force_login(scene.duo)
    for query in ("", f"?version={scene.other.version}"):
        r = client.get(f"/review/images/{scene.image.pk}/{query}")
        assert r.status_code == 200 and MARKER not in text(r) and "zed" not in text(r), query


def test_the_adjudication_page_answers_nothing_while_the_image_is_in_review(scene, client, adjudicator):
    for user in (scene.duo, adjudicator):
        client.force_login(user)
        r = client.get(f"/review/adjudication/{scene.image.pk}/")
        assert r.status_code == 404 and MARKER not in text(r)


def test_a_user_who_may_still_be_given_a_slot_sees_no_other_review(scene, api_client, client):
    """No lease yet, but the image wants another review and they have not given one."""
    Lease.objects.filter(pk=scene.lease.pk).update(state="released")
    api_client.force_authenticate(scene.duo)
    for url in (f"/api/annotations/?image={scene.image.pk}&kind=human", f"/api/images/{scene.image.pk}/versions/",
                f"/api/review/adjudication/{scene.image.pk}/"):
        assert MARKER not in text(api_client.get(url)), url
    client.force_login(scene.duo)
    assert MARKER not in text(client.get(f"/review/images/{scene.image.pk}/"))
    assert visibility.user_may_review(user=scene.duo, image=scene.image)


def test_the_disagreement_log_hides_the_other_review_from_an_admin_holding_a_slot(scene, api_client, client):
    boss = UserFactory(username="boss", roles=["reviewer", "admin", "researcher"])
    Lease.objects.filter(pk=scene.lease.pk).update(state="released")
    assert queue.lease_next(dataset=scene.dataset, reviewer=boss).image_id == scene.image.pk
    api_client.force_authenticate(boss)
    r = api_client.get("/api/review/disagreements/")
    assert r.status_code == 200 and MARKER not in text(r)
    client.force_login(boss)
    r = client.get("/review/disagreements/")
    assert r.status_code == 200 and MARKER not in text(r)


@pytest.mark.parametrize("export_format", ["emoverse-jsonl", "coco", "parquet"])
def test_an_in_review_export_never_carries_the_other_review(scene, api_client, export_format,
                                                               django_capture_on_commit_callbacks):
    """An admin who is also a reviewer, holding the second slot, exports the images in review (as
    they may: exports are theirs) and downloads the snapshot: the other person's pending review is
    not in it, whatever the format; the manifest says the image was left out while in review."""
    boss = UserFactory(username="boss", roles=["reviewer", "admin"])
    Lease.objects.filter(pk=scene.lease.pk).update(state="released")
    assert queue.lease_next(dataset=scene.dataset, reviewer=boss).image_id == scene.image.pk
    api_client.force_authenticate(boss)
    with django_capture_on_commit_callbacks(execute=True):
        r = api_client.post("/api/exports/", {"dataset": scene.dataset.slug, "format": export_format,
                                              "filters": {"status": ["in_review"]}}, format="json")
    assert r.status_code == 201, r.json()
    snapshot = api_client.get(f"/api/exports/{r.json()['id']}/").json()
    assert snapshot["status"] == "complete", snapshot
    download = api_client.get(snapshot["download_url"])
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content) if download.streaming else download.content))
    for name in archive.namelist():
        assert MARKER.encode() not in archive.read(name), name
    counts = snapshot["manifest"]["counts"]
    assert (counts["images"], counts["skipped_in_review"]) == (0, 1)
    assert snapshot["manifest"]["left_out"]["images_still_in_review"] == 1


def test_a_reviewer_never_adjudicates_the_conflict_their_review_made(scene, api_client, client):
    result = review(scene.dataset, scene.duo, label="fear")
    assert result.image_status == ImageStatus.ADJUDICATION
    api_client.force_authenticate(scene.duo)
    assert api_client.get("/api/review/adjudication/").json()["results"] == []
    assert api_client.get(f"/api/review/adjudication/{scene.image.pk}/").status_code == 403
    r = api_client.post(f"/api/review/adjudication/{scene.image.pk}/",
                        {"expected_version": result.annotation.version, "annotation": human_answer(
                            selectors.adjudication_payload(scene.image), label="fear")}, format="json")
    assert r.status_code == 403
    r = api_client.post("/api/review/refine/", {"image_id": scene.image.pk, "points": [[5, 5]], "labels": [1]}, format="json")
    assert r.status_code == 403
    client.force_login(scene.duo)
    assert f"/review/adjudication/{scene.image.pk}/" not in text(client.get("/review/adjudication/"))
    assert client.get(f"/review/adjudication/{scene.image.pk}/").status_code == 403
    scene.image.refresh_from_db()
    assert scene.image.status == ImageStatus.ADJUDICATION

    # Another adjudicator gets it, and decides it.
    ada = UserFactory(username="ada", roles=["adjudicator"])
    api_client.force_authenticate(ada)
    assert [row["id"] for row in api_client.get("/api/review/adjudication/").json()["results"]] == [scene.image.pk]
    detail = api_client.get(f"/api/review/adjudication/{scene.image.pk}/").json()
    r = api_client.post(f"/api/review/adjudication/{scene.image.pk}/",
                        {"expected_version": detail["version"], "annotation": human_answer(detail, label="awe")}, format="json")
    assert r.status_code == 201


# --- the rule lets go once the user's own review is in --------------------------------


def test_after_submitting_the_reviewer_may_read_the_other_review(scene, api_client):
    review(scene.dataset, scene.duo, label="awe")
    assert not visibility.user_may_review(user=scene.duo, image=scene.image)
    api_client.force_authenticate(scene.duo)
    r = api_client.get(f"/api/annotations/?image={scene.image.pk}&kind=human")
    assert MARKER in text(r) and len(r.json()["results"]) == 2


def test_researchers_and_admins_who_do_not_review_it_see_everything(scene, api_client, researcher, admin_user):
    for user in (researcher, admin_user):
        api_client.force_authenticate(user)
        assert MARKER in text(api_client.get(f"/api/images/{scene.image.pk}/versions/"))
        assert MARKER in text(api_client.get("/api/review/disagreements/"))


def test_who_may_still_be_given_a_slot(scene, make_reviewer):
    """The one rule (``review.visibility.images_user_may_review``) case by case."""
    image = scene.image
    assert visibility.user_may_review(user=scene.duo, image=image)        # holds a live lease
    assert not visibility.user_may_review(user=scene.zed, image=image)    # submitted
    assert visibility.user_may_review(user=make_reviewer("new"), image=image)  # image wants one more review
    adjudicator_only = UserFactory(username="adj-only", roles=["adjudicator", "researcher", "admin"])
    assert not visibility.user_may_review(user=adjudicator_only, image=image)  # not a reviewer, no lease
    review(scene.dataset, scene.duo, label="fear")                        # all slots filled: adjudication
    assert not visibility.user_may_review(user=make_reviewer("late"), image=image)


# --- every endpoint in the schema, every page ----------------------------------------


def _candidates(scene) -> dict[str, list]:
    """Values for the path parameters of the schema and the URL patterns."""
    ids = sorted({scene.image.pk, scene.dataset.pk, *Annotation.objects.filter(image=scene.image).values_list("pk", flat=True),
                  *Lease.objects.filter(image=scene.image).values_list("pk", flat=True)})
    return {"id": ids, "pk": ids, "image_id": [scene.image.pk], "slug": [scene.dataset.slug],
            "path": ["data.jsonl", "annotations.json", "manifest.json"],
            "key": ["perception", "valence", "00000000-0000-0000-0000-000000000000"]}  # QA configuration, pair keys


def _fill(template: str, values: dict[str, list], brackets: str) -> list[str]:
    """Every URL ``template`` gives with the candidate values of its parameters (``{id}`` or ``<id:pk>``)."""
    opening, closing = brackets
    urls = [template]
    for name in re.findall(re.escape(opening) + r"(.+?)" + re.escape(closing), template):
        urls = [u.replace(f"{opening}{name}{closing}", str(v), 1) for u in urls for v in values[name.split(":")[-1]]]
    return urls


def _queries(scene) -> list[str]:
    image, slug = scene.image.pk, scene.dataset.slug
    return ["", f"?image={image}&dataset={slug}", f"?image={image}&dataset={slug}&kind=human&author=zed&current=true"]


def _api_urls(client, scene) -> list[str]:
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = [path for path, operations in schema.json()["paths"].items() if "get" in operations]
    assert "/api/annotations/" in paths and "/api/images/{id}/versions/" in paths  # the walk sees the API
    values = _candidates(scene)
    return [url + query for path in paths for url in _fill(path, values, "{}") for query in _queries(scene)]


def _page_urls(scene) -> list[str]:
    """Every GET page of the site (not the API, the Django admin or the login views)."""
    routes = []

    def walk(resolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry, route)
            elif isinstance(entry, URLPattern) and not route.startswith(("api/", "django-admin/", "accounts/")):
                routes.append("/" + route)

    walk(get_resolver(), "")
    assert "/review/images/<id:pk>/" in routes
    values = _candidates(scene)
    urls = [url for route in routes for url in _fill(route, values, "<>")]
    versions = Annotation.objects.filter(image=scene.image).values_list("version", flat=True)
    return urls + [f"/review/images/{scene.image.pk}/?version={v}" for v in versions] + \
        [f"/datasets/{scene.dataset.slug}/?status=in_review"]


def _walk(scene, user, api_client, client) -> dict[str, int]:
    """GET every API endpoint and page as ``user``; the URLs whose answer shows the marker."""
    api_client.force_authenticate(user)
    client.force_login(user)
    shown = {}
    for url in _api_urls(api_client, scene):
        r = api_client.get(url)
        assert r.status_code < 500, (url, r.status_code)
        if MARKER in text(r):
            shown[url] = r.status_code
    r = api_client.post("/api/review/next/", {"dataset": scene.dataset.slug}, format="json")
    if MARKER in text(r):
        shown["POST /api/review/next/"] = r.status_code
    for url in _page_urls(scene):
        r = client.get(url)
        assert r.status_code < 500, (url, r.status_code)
        if MARKER in text(r):
            shown[url] = r.status_code
    return shown


@pytest.mark.parametrize("roles", [DUAL, EVERY_ROLE], ids=["reviewer+adjudicator", "every-role"])
def test_no_endpoint_or_page_shows_the_other_review_to_a_slot_holder(scene, api_client, client, roles):
    user = UserFactory(username="walker", roles=list(roles))
    Lease.objects.filter(pk=scene.lease.pk).update(state="released")
    assert queue.lease_next(dataset=scene.dataset, reviewer=user).image_id == scene.image.pk
    assert _walk(scene, user, api_client, client) == {}


def test_the_walk_finds_the_marker_where_it_may_be_shown(scene, api_client, client):
    """The same walk as a researcher-admin who reviews nothing: the marker is there to find."""
    shown = _walk(scene, UserFactory(username="onlooker", roles=["researcher", "admin", "adjudicator"]), api_client, client)
    assert f"/api/images/{scene.image.pk}/versions/" in shown
    assert f"/review/images/{scene.image.pk}/" in shown
    assert "/api/review/disagreements/" in shown
