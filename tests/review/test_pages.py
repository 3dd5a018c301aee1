"""The disagreement log page and the adjudication pages: roles, filters, htmx partials, escaping."""

import pytest

from review import queue, selectors, services
from tests.factories import DatasetFactory
from tests.review.conftest import accept_each, human_answer, image_in_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def review(dataset, reviewer, label):
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    answer = human_answer(payload, label=label)
    return services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                                  annotation=answer, element_decisions=accept_each(answer))


@pytest.mark.parametrize("url", ["/review/disagreements/", "/review/adjudication/"])
def test_anonymous_users_are_sent_to_log_in(client, url):
    r = client.get(url)
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_the_log_page_is_for_admins_and_researchers(logged, reviewer, researcher, admin_user):
    assert logged(reviewer).get("/review/disagreements/").status_code == 403
    assert logged(researcher).get("/review/disagreements/").status_code == 200
    assert logged(admin_user).get("/review/disagreements/").status_code == 200


def test_the_log_page_filters_and_returns_the_table_alone_to_htmx(logged, researcher, dataset, reviewer):
    image_in_review(dataset)
    review(dataset, reviewer, "sadness")
    client = logged(researcher)
    page = client.get("/review/disagreements/?model=gemini-2.5").content.decode()
    assert "<h1>Disagreement log</h1>" in page and "gemini-2.5" in page and "sadness" in page
    partial = client.get("/review/disagreements/?field=element_phrase", HTTP_HX_REQUEST="true").content.decode()
    assert "<h1>" not in partial and "lone boat" in partial and "sadness" not in partial
    empty = client.get("/review/disagreements/?reviewer=nobody&since=2020-01-01&until=2020-01-02").content.decode()
    assert "No disagreement matches" in empty
    assert client.get("/review/disagreements/?since=yesterday").status_code == 400


def test_the_log_page_pages_by_id(logged, researcher, dataset, reviewer, monkeypatch):
    monkeypatch.setattr("review.views.LOG_PAGE_SIZE", 2)
    image_in_review(dataset)
    review(dataset, reviewer, "sadness")  # 4 rows
    client = logged(researcher)
    first = client.get("/review/disagreements/").content.decode()
    assert "Older rows" in first
    last_id = int(first.split("before=")[1].split('"')[0])
    older = client.get(f"/review/disagreements/?before={last_id}").content.decode()
    assert "Older rows" not in older and older.count("<tr>") == 3  # header + 2 rows


@pytest.fixture
def disputed(make_reviewer):
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    review(dataset, make_reviewer("ann"), "awe")
    review(dataset, make_reviewer("bob"), "fear")
    return image


def test_adjudication_pages_show_every_review_to_adjudicators_only(logged, disputed, adjudicator, reviewer):
    assert logged(reviewer).get("/review/adjudication/").status_code == 403
    assert logged(reviewer).get(f"/review/adjudication/{disputed.pk}/").status_code == 403
    client = logged(adjudicator)
    listing = client.get("/review/adjudication/").content.decode()
    assert f"/review/adjudication/{disputed.pk}/" in listing and "1 item waiting" in listing
    page = client.get(f"/review/adjudication/{disputed.pk}/").content.decode()
    assert "Review 1 · ann" in page and "Review 2 · bob" in page and 'id="adjudication-data"' in page
    assert "review/adjudication_page.js" in page  # starts static/review/adjudication.js


def test_model_text_is_escaped_on_the_adjudication_page(logged, adjudicator, make_reviewer):
    dataset = DatasetFactory(slug="xss", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    from annotations.models import Annotation
    Annotation.objects.filter(image=image, author_name="pipeline").update(rationale="<script>alert(1)</script>")
    review(dataset, make_reviewer("ann"), "awe")
    review(dataset, make_reviewer("bob"), "fear")
    page = logged(adjudicator).get(f"/review/adjudication/{image.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
