"""Issue 12, item 9 ("a page that tells the truth"), through Django's test client: the
progress that follows every submit, refine_available, the image page's version states
and the login redirect of the API docs. The browser side is test_page_truth_browser.py."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from annotations.domain import PIPELINE_AUTHOR
from tests.factories import DatasetFactory, UserFactory, make_annotation
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def review_once(client, slug: str) -> dict:
    item = client.post("/api/review/next/", {"dataset": slug}, format="json").json()
    r = client.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                    {"expected_version": item["version"], "decision": "approved", "annotation": human_answer(item)}, format="json")
    assert r.status_code == 201, r.content
    return item


def test_progress_follows_every_submit_even_when_items_wait_for_a_second_review():
    dataset = DatasetFactory(slug="twice", reviews_per_item=2, overlap_fraction=1.0)
    for _ in range(3):
        image_in_review(dataset, annotators=False)
    client = as_user(UserFactory(username="ann", roles=["reviewer"]))
    seen = []
    for _ in range(3):
        review_once(client, "twice")
        body = client.get("/api/review/progress/?dataset=twice").json()
        seen.append((body["done"], body["left"], body["you"]))
    # the dataset's counts stand still (every item waits for its second review) ...
    assert {(done, left) for done, left, _ in seen} == {(0, 3)}
    # ... the reviewer's own move with each submit
    assert [you for _, _, you in seen] == [{"reviewed": 1, "left": 2}, {"reviewed": 2, "left": 1}, {"reviewed": 3, "left": 0}]
    other = as_user(UserFactory(username="bob", roles=["reviewer"])).get("/api/review/progress/?dataset=twice").json()
    assert other["you"] == {"reviewed": 0, "left": 3}


def test_next_says_whether_refine_is_available_and_the_page_disables_the_tool(client, settings):
    dataset = DatasetFactory(slug="demo")
    image_in_review(dataset, annotators=False)
    user = UserFactory(username="rita", roles=["reviewer"])
    api = as_user(user)
    settings.EMOVERSE_ML = {}
    assert api.post("/api/review/next/", {"dataset": "demo"}, format="json").json()["refine_available"] is False
    client.force_login(user)
    button = re.search(r'<button[^>]*data-tool="refine"[^>]*>', client.get("/review/demo/").content.decode()).group(0)
    assert " disabled" in button and 'title="Click-to-refine is not set up on this server"' in button

    settings.EMOVERSE_ML = {"segmenter": {"backend": "sam"}}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_RESULT_BACKEND = "redis://127.0.0.1:6379/0"
    assert api.post("/api/review/next/", {"dataset": "demo"}, format="json").json()["refine_available"] is True
    button = re.search(r'<button[^>]*data-tool="refine"[^>]*>', client.get("/review/demo/").content.decode()).group(0)
    assert " disabled" not in button


def version_states(html: str) -> dict[int, str]:
    return {int(v): state for v, state in re.findall(r'data-version="(\d+)" data-state="(\w*)"', html)}


def test_image_page_labels_only_the_standing_answer_current(client):
    dataset = DatasetFactory(slug="demo")
    image = image_in_review(dataset, annotators=False)  # v1: the pipeline's answer, under review
    make_annotation(image, author_name="gpt-4o")  # v2
    make_annotation(image, author_name="gpt-4o", payload_kwargs={"label": "awe"})  # v3 replaces v2
    client.force_login(UserFactory(username="res", roles=["researcher"]))
    url = f"/review/images/{image.pk}/"
    html = client.get(url).content.decode()
    assert version_states(html) == {3: "", 2: "superseded", 1: "current"}
    assert html.count('<span class="badge current">current</span>') == 1

    review_once(as_user(UserFactory(username="rita", roles=["reviewer"])), "demo")  # v4: approved, the answer now
    html = client.get(url).content.decode()
    assert version_states(html) == {4: "current", 3: "superseded", 2: "superseded", 1: "superseded"}
    assert html.count('<span class="badge current">current</span>') == 1
    assert image.annotations.get(version=1).author_name == PIPELINE_AUTHOR


def test_api_docs_logged_out_redirect_to_the_login_page(client):
    r = client.get("/api/docs/")
    assert r.status_code == 302 and r["Location"] == "/accounts/login/?next=/api/docs/"
    r = client.get("/api/schema/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert r.status_code == 302 and r["Location"] == "/accounts/login/?next=/api/schema/"
    # API clients keep their JSON answers
    for url in ("/api/schema/?format=json", "/api/datasets/", "/api/review/progress/?dataset=x"):
        r = client.get(url, HTTP_ACCEPT="application/json")
        assert r.status_code in (401, 403) and "detail" in r.json(), url
    r = client.get("/api/docs/", HTTP_AUTHORIZATION="Token not-a-token")
    assert r.status_code in (401, 403)
    # logged in, the docs are there
    client.force_login(UserFactory(username="rita", roles=["reviewer"]))
    assert client.get("/api/docs/").status_code == 200
