"""The pipeline progress page, the Pre-annotate and Retry buttons (admin only, CSRF)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotations.models import ImageStatus
from ml.config import reset_registry
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from tests.factories import DatasetFactory, ImageFactory
from demo.chat_server import Reply
from tests.ml.stage_fakes import api_pipeline_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="storms", name="Storms")
    for i in range(2):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=200 + i)
    return dataset


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def configured(settings, fake_openai, openai_key):
    settings.EMOVERSE_ML = api_pipeline_config(fake_openai.base_url, openai_key, version="page-v1", critic_model="c")
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def unconfigured(settings):
    settings.EMOVERSE_ML = {}
    reset_registry()
    yield
    reset_registry()


def test_only_admins_see_the_page(client, reviewer, dataset):
    url = reverse("ml:pipeline", args=[dataset.slug])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(reviewer)
    assert client.get(url).status_code == 403
    assert client.post(reverse("ml:start", args=[dataset.slug])).status_code == 403


def test_unconfigured_page_says_what_to_configure(admin_client, dataset, unconfigured):
    response = admin_client.get(reverse("ml:pipeline", args=[dataset.slug]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "The pipeline is not configured" in body and "EMOVERSE_ML_CONFIG" in body
    assert "no annotators configured" in body and "no grounder configured" in body
    assert body.count("docs/ml-backends.md") == 1  # where the configuration goes is said once, not per problem


def test_pre_annotate_without_configuration_starts_nothing(admin_client, dataset, unconfigured):
    response = admin_client.post(reverse("ml:start", args=[dataset.slug]), follow=True)
    assert "not configured" in response.content.decode()
    assert not PipelineRun.objects.exists()


def test_pre_annotate_runs_and_the_page_shows_progress(admin_client, dataset, configured, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("ml:start", args=[dataset.slug]), {"limit": "1"}, follow=True)

    assert "Queued 1 image(s) for pipeline page-v1; 1 skipped." in response.content.decode()
    assert PipelineRun.objects.get().status == RunStatus.DONE  # the work is sent after the commit
    body = admin_client.get(reverse("ml:pipeline", args=[dataset.slug])).content.decode()
    assert "done 1" in body
    assert "annotate:model-a" in body and "critic" in body
    assert 'hx-trigger="every 2s"' not in body  # nothing running: no polling


def test_htmx_polls_a_partial_while_work_is_active(admin_client, dataset, configured):
    PipelineRun.objects.create(image=dataset.images.first(), pipeline_version="page-v1", status=RunStatus.RUNNING)
    url = reverse("ml:pipeline", args=[dataset.slug])

    full = admin_client.get(url).content.decode()
    partial = admin_client.get(url, headers={"HX-Request": "true"}).content.decode()

    assert 'hx-trigger="every 2s"' in full
    assert partial.startswith('<div id="pipeline-progress"') and "<html" not in partial
    assert "running 1" in partial


def test_failures_show_their_reason_and_retry_sends_them_again(
    admin_client, dataset, configured, fake_openai, django_capture_on_commit_callbacks
):
    fake_openai.push(Reply("I cannot see an image."))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("ml:start", args=[dataset.slug]), {"limit": "1"})
    page = admin_client.get(reverse("ml:pipeline", args=[dataset.slug])).content.decode()
    assert "malformed JSON" in page and "Retry 1 failed" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("ml:retry", args=[dataset.slug]), follow=True)

    assert "Sent 1 failed image(s) again." in response.content.decode()
    assert PipelineRun.objects.get().status == RunStatus.DONE


def test_bad_limit_is_refused(admin_client, dataset, configured):
    response = admin_client.post(reverse("ml:start", args=[dataset.slug]), {"limit": "-3"}, follow=True)
    assert "Not started" in response.content.decode()
    assert not PipelineRun.objects.exists()


def test_pre_annotate_needs_the_csrf_token(admin_user, dataset, configured):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(reverse("ml:start", args=[dataset.slug])).status_code == 403
    assert not PipelineRun.objects.exists()


def test_django_admin_lists_runs_read_only(dataset, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.org", "pw-for-tests-123")
    run = PipelineRun.objects.create(image=dataset.images.first(), pipeline_version="v1", status=RunStatus.FAILED, error="boom")
    client = Client()
    client.force_login(superuser)

    listing = client.get("/django-admin/ml/pipelinerun/")
    detail = client.get(f"/django-admin/ml/pipelinerun/{run.pk}/change/")

    assert listing.status_code == 200 and f"{run.pk}" in listing.content.decode()
    assert detail.status_code == 200 and "boom" in detail.content.decode()
    assert client.post(f"/django-admin/ml/pipelinerun/{run.pk}/delete/").status_code == 403


def test_the_dataset_page_has_a_pre_annotate_button_for_admins_only(admin_client, reviewer, dataset, configured,
                                                                     django_capture_on_commit_callbacks):
    url = reverse("dataset-detail", args=[dataset.slug])
    start = reverse("ml:start", args=[dataset.slug])
    page = admin_client.get(url).content.decode()
    form = re.search(rf'<form method="post" action="{re.escape(start)}">(.*?)</form>', page, re.S)
    assert form is not None
    assert 'name="csrfmiddlewaretoken"' in form.group(1) and ">Pre-annotate</button>" in form.group(1)

    reviewer_client = Client()
    reviewer_client.force_login(reviewer)
    assert start not in reviewer_client.get(url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(start, follow=True)  # what the button posts: no limit, no force
    assert "Queued 2 image(s) for pipeline page-v1; 0 skipped." in response.content.decode()
    assert set(PipelineRun.objects.values_list("status", flat=True)) == {RunStatus.DONE}


def test_stuck_runs_are_shown_and_retry_sends_them_again(admin_client, dataset, configured, django_capture_on_commit_callbacks):
    image = dataset.images.first()
    run = PipelineRun.objects.create(image=image, pipeline_version="page-v1", status=RunStatus.RUNNING)
    past = timezone.now() - dt.timedelta(hours=3)
    # What a hard time limit leaves: the stage 'running' under a lease that ran out, nothing since.
    StageResult.objects.create(run=run, stage="annotate:model-a", status=StageStatus.RUNNING, owner="killed", lease_until=past)
    StageResult.objects.update(updated_at=past)
    PipelineRun.objects.filter(pk=run.pk).update(updated_at=past)

    page = admin_client.get(reverse("ml:pipeline", args=[dataset.slug])).content.decode()
    assert "1 run stuck: a worker took it and stopped" in page
    assert "Retry 0 failed and 1 stuck" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("ml:retry", args=[dataset.slug]), follow=True)

    assert "Sent 0 failed image(s) again, and 1 stuck (no worker held them, no message of theirs in the broker)." in (
        response.content.decode())
    assert PipelineRun.objects.get().status == RunStatus.DONE


@pytest.fixture
def priced(settings, fake_openai, openai_key):
    """Every model call at $0.001 / 1K prompt and $0.002 / 1K completion tokens."""
    config = api_pipeline_config(fake_openai.base_url, openai_key, version="page-v1", critic_model="c")
    for entry in [*config["annotators"], config["critic"]]:
        entry["options"].update(price_per_1k_prompt=0.001, price_per_1k_completion=0.002)
    settings.EMOVERSE_ML = config
    reset_registry()
    yield
    reset_registry()


def test_tokens_and_cost_of_the_model_calls_are_stored_per_run_and_shown(
    admin_client, client, reviewer, dataset, priced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("ml:start", args=[dataset.slug]), {"limit": "1"})

    run = PipelineRun.objects.get()
    # Two annotators and the critic; the server's usage is 1200 prompt + 150 completion tokens a call.
    assert (run.prompt_tokens, run.completion_tokens) == (3 * 1200, 3 * 150)
    assert run.cost_usd == pytest.approx(3 * (1.2 * 0.001 + 0.15 * 0.002))
    body = admin_client.get(reverse("ml:pipeline", args=[dataset.slug])).content.decode()
    assert "3600 prompt + 450 completion tokens" in body and "cost $0.0045" in body

    api = admin_client.get(f"/api/pipeline/{dataset.slug}/progress/").json()
    assert api["runs"] == {"done": 1} and api["pipeline_version"] == "page-v1"
    assert (api["prompt_tokens"], api["completion_tokens"]) == (3600, 450)
    assert api["cost_usd"] == pytest.approx(0.0045)
    assert {s["stage"]: s["done"] for s in api["stages"]}["critic"] == 1
    client.force_login(reviewer)
    assert client.get(f"/api/pipeline/{dataset.slug}/progress/").status_code == 403
    assert admin_client.get("/api/pipeline/no-such-set/progress/").status_code == 404


def test_the_configurations_notice_is_shown_on_the_pipeline_page(admin_client, dataset, configured, settings):
    settings.EMOVERSE_ML["notice"] = "Demonstration of the machinery, not of model quality."
    reset_registry()
    body = admin_client.get(reverse("ml:pipeline", args=[dataset.slug])).content.decode()
    assert '<li class="warning pipeline-notice"><strong>Demonstration of the machinery, not of model quality.</strong>' in body
    settings.EMOVERSE_ML.pop("notice")
    reset_registry()
    assert "pipeline-notice" not in admin_client.get(reverse("ml:pipeline", args=[dataset.slug])).content.decode()
