"""The demo's QA pairs and ratings: a new user sees both QA pages after ``manage.py demo``."""

from __future__ import annotations

from collections import Counter

import pytest
from django.contrib.auth import get_user_model

from demo.qa import demo_qa_load
from demo.scenes import SCENES
from demo.services import DEMO_DATASET, demo_load
from qa.models import QAPair, Rating, RaterKind

pytestmark = pytest.mark.django_db


def test_demo_seeds_qa_pairs_and_ratings_once_and_both_pages_show_them(tmp_path, client):
    demo_load(folder=tmp_path / "demo")
    pairs = QAPair.objects.filter(dataset__slug=DEMO_DATASET, is_current=True)
    per_image = Counter(pairs.values_list("image_id", flat=True))
    assert len(per_image) == len(SCENES) and set(per_image.values()) <= {4, 5}
    assert set(pairs.values_list("question_type", flat=True)) == {"multiple_choice", "yes_no", "open"}
    assert pairs.filter(critic_agrees=False).count() == (len(SCENES) + 1) // 2
    assert pairs.filter(elements__isnull=False).distinct().count() >= 2 * len(SCENES)
    assert Rating.objects.filter(rater_kind=RaterKind.MODEL).count() == 3 * len(SCENES)
    assert Rating.objects.filter(rater_kind=RaterKind.HUMAN).values("rater_user").distinct().count() == 2
    counts = (QAPair.objects.count(), Rating.objects.count())
    dataset = pairs.first().dataset
    assert demo_qa_load(dataset=dataset) == (0, 0) and (QAPair.objects.count(), Rating.objects.count()) == counts

    client.force_login(get_user_model().objects.get(username="reviewer"))
    page = client.get(f"/qa/review/{DEMO_DATASET}/")
    assert page.status_code == 200 and "qa-review-data" in page.content.decode()
    client.force_login(get_user_model().objects.get(username="rater"))
    first = client.get(f"/qa/rate/{DEMO_DATASET}/")
    assert first.status_code == 302
    form = client.get(first.url).content.decode()
    assert 'type="range"' in form and "Model gpt-4o (demo)" in form
