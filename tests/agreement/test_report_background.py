"""Reports computed by a worker: one computation per state of the data, polling, failures.

The cache is the real Redis (as in production with ``CACHE_URL``); the broker is
replaced by a list of sent tasks (``sent``, tests/agreement/conftest.py), which the
test then runs as the worker would.
"""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import Client

from agreement import report_cache, tasks
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters
from annotations.models import AnnotationKind, Decision
from tests.agreement.scenes import build_scene, payload
from tests.factories import make_annotation

pytestmark = pytest.mark.django_db
@pytest.fixture
def client(researcher) -> Client:
    client = Client()
    client.force_login(researcher)
    return client


def test_without_a_broker_and_shared_cache_the_report_is_computed_in_the_request(settings):
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 20
    scene = build_scene()
    assert not report_cache.computes_in_background()
    state = tasks.report_or_start(dataset=scene.dataset, filters=ReportFilters())
    assert state.status == "ready" and state.report["labels"]["krippendorff_alpha"]["n"] > 0
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker, but a per-process cache: still in the request
    assert not report_cache.computes_in_background()


def test_page_starts_one_computation_polls_then_shows_the_report(sent, client):
    scene = build_scene()
    page = client.get("/agreement/study/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "A worker is computing this report" in html and "/agreement/study/status/" in html
    assert "Krippendorff" not in html
    assert client.get("/agreement/study/").status_code == 200
    assert len(sent) == 1 and sent[0][1] == scene.dataset.pk  # the second visit did not start another

    status = client.get("/agreement/study/status/")
    assert status.json()["status"] == "computing" and "HX-Refresh" not in status
    assert client.get("/agreement/study/report.csv").url == "/agreement/study/"  # not ready: back to the page

    sent.work()
    status = client.get("/agreement/study/status/")
    assert status.json() == {"status": "ready"} and status["HX-Refresh"] == "true"
    html = client.get("/agreement/study/").content.decode()
    assert "Krippendorff" in html and "A worker is computing" not in html
    download = client.get("/agreement/study/report.csv")
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert sent == []  # everything came from the cache


def test_filters_are_passed_to_the_worker(sent, client):
    build_scene()
    client.get("/agreement/study/", {"reviewer": "alice"})
    sent.work()
    report = client.get("/agreement/study/report.json", {"reviewer": "alice"}).json()
    assert report["counts"]["reviewers"] == ["alice"] and report["filters"]["reviewers"] == ["alice"]


def test_api_answers_202_with_retry_after_then_the_report(sent, researcher):
    build_scene()
    client = Client()
    client.force_login(researcher)
    first = client.get("/api/agreement/datasets/study/report/")
    assert first.status_code == 202 and first["Retry-After"] == "5"
    assert first.json()["status"] == "computing" and isinstance(first.json()["started"], float)
    assert client.get("/api/agreement/datasets/study/report/").status_code == 202 and len(sent) == 1
    sent.work()
    ready = client.get("/api/agreement/datasets/study/report/")
    assert ready.status_code == 200 and ready.json()["labels"]["krippendorff_alpha"]["n"] > 0


def test_a_failed_computation_is_shown_once_then_started_again(sent, client, monkeypatch):
    build_scene()
    client.get("/agreement/study/")

    def broken(**kwargs):
        raise MemoryError("out of memory <b>on the worker</b>")

    real = report_cache.agreement_report
    monkeypatch.setattr(report_cache, "agreement_report", broken)
    with pytest.raises(MemoryError):
        sent.work()
    status = client.get("/agreement/study/status/")
    assert status.json()["status"] == "failed" and status["HX-Refresh"] == "true"
    page = client.get("/agreement/study/")
    assert page.status_code == 500
    html = page.content.decode()
    assert "could not be computed: MemoryError: out of memory &lt;b&gt;on the worker&lt;/b&gt;" in html
    assert sent == []  # the failure is shown, not retried behind the user's back
    monkeypatch.setattr(report_cache, "agreement_report", real)
    assert "A worker is computing" in client.get("/agreement/study/").content.decode()
    assert len(sent) == 1  # the next visit starts it again
    sent.work()
    assert "Krippendorff" in client.get("/agreement/study/").content.decode()


def test_new_reviews_while_computing_make_the_page_reload_for_the_new_data(sent, client):
    scene = build_scene()
    client.get("/agreement/study/")
    make_annotation(scene.images[9], kind=AnnotationKind.HUMAN, author_name="carol", author_user=scene.users["carol"],
                    payload=payload("excitement", scene.keys[9]), decision=Decision.APPROVED)
    status = client.get("/agreement/study/status/")
    assert status.json() == {"status": "idle"} and status["HX-Refresh"] == "true"
    client.get("/agreement/study/")
    assert len(sent) == 2
    sent.work()
    report = client.get("/agreement/study/report.json").json()
    assert report["labels"]["fleiss_kappa"]["n"] == 10  # carol's review is in


def test_a_dead_worker_does_not_block_the_report_for_ever(sent, client, monkeypatch):
    """The lock expires (worker killed, message lost); the next visit starts the report again.

    The lock's lifetime is checked in Redis, then shortened to a second, as if it had passed:
    a one-second lifetime from the start made the test depend on two page loads taking less
    than a second (they did not on a loaded machine)."""
    scene = build_scene()
    monkeypatch.setattr(tasks, "LOCK_SECONDS", 120)
    client.get("/agreement/study/")
    sent.clear()  # the message is lost with its worker
    assert "A worker is computing" in client.get("/agreement/study/").content.decode() and sent == []
    lock = report_cache.report_key(dataset=scene.dataset, filters=ReportFilters(), options=ReportOptions.from_settings())
    assert cache.get(f"{lock}:computing") is not None
    ttl_ms = cache._cache.get_client(write=False).pttl(cache.make_and_validate_key(f"{lock}:computing"))
    assert 0 < ttl_ms <= 120_000  # set with the lock's lifetime: Redis removes it on its own
    assert cache.touch(f"{lock}:computing", 1)
    deadline = time.monotonic() + 60
    while cache.get(f"{lock}:computing") is not None:  # until Redis expires the lock
        assert time.monotonic() < deadline, "the lock never expired"
        time.sleep(0.05)
    client.get("/agreement/study/")
    assert len(sent) == 1


def test_status_needs_the_researcher_or_admin_role(sent, reviewer):
    build_scene()
    client = Client()
    client.force_login(reviewer)
    assert client.get("/agreement/study/status/").status_code == 403
    assert Client().get("/agreement/study/status/").status_code in (302, 403)
    assert sent == []
