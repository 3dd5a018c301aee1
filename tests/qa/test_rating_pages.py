"""The rating page: K raters per image, all scales at once, blind mode (recorded, model scores
hidden), aggregates after rating, 400/409, role checks and CSRF."""

from __future__ import annotations

import pytest
from django.test import Client

from qa.models import AssessmentScale, Rating
from qa.services import qa_config_install_defaults, rating_create
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="rate-set", reviews_per_item=2)
    qa_config_install_defaults(dataset=dataset)
    return dataset


def rater(name, role="rater"):
    c = Client()
    c.force_login(UserFactory(username=name, roles=[role]))
    return c


def values(**over):
    return {"scale-intensity": "7", "scale-valence": "3", "scale-arousal": "8", **over}


def test_k_raters_per_image_fewest_raters_first_then_nothing_left(dataset):
    first, second = ImageFactory(dataset=dataset), ImageFactory(dataset=dataset)
    for name, expected in (("ann", first), ("bob", second), ("cy", first), ("dan", second)):
        c = rater(name)
        response = c.get("/qa/rate/rate-set/")
        assert response.status_code == 302 and response.url == f"/qa/rate/rate-set/{expected.pk}/", name
        assert c.post(response.url, values()).status_code == 302
    # Both images have their two raters.
    done = rater("eve").get("/qa/rate/rate-set/")
    assert done.status_code == 200 and "Nothing left to rate" in done.content.decode()
    assert "Nothing left to rate" in rater("ann").get("/qa/rate/rate-set/").content.decode()


def test_submit_stores_every_scale_and_shows_aggregates(dataset):
    image = ImageFactory(dataset=dataset)
    bob = UserFactory(username="bob", roles=["rater"])
    for scale, v in (("intensity", 5), ("valence", 5), ("arousal", 6)):
        rating_create(image=image, scale=AssessmentScale.objects.get(dataset=dataset, key=scale), value=v, user=bob)
    c = rater("ann")
    url = f"/qa/rate/rate-set/{image.pk}/"
    form = c.get(url).content.decode()
    assert 'type="range"' in form and "qa/rate.js" in form
    assert c.post(url, values()).status_code == 302
    assert sorted(Rating.objects.filter(rater_name="ann").values_list("scale__key", "value", "blind")) == [
        ("arousal", 8.0, False),
        ("intensity", 7.0, False),
        ("valence", 3.0, False),
    ]
    result = c.get(url).content.decode()
    # intensity: 5 and 7 → mean 6, sd 1.41, 95 % CI 6 ± 12.706 · 1.414 / √2 = [-6.71, 18.71]
    assert "6.00" in result and "1.41" in result and "-6.71 – 18.71" in result
    assert 'id="rate-next"' in result


def test_bad_values_are_400_second_rating_409_nothing_partial(dataset):
    image = ImageFactory(dataset=dataset)
    c = rater("ann")
    url = f"/qa/rate/rate-set/{image.pk}/"
    for bad, field in (
        (values(**{"scale-valence": "12"}), "valence"),
        (values(**{"scale-arousal": "x"}), "arousal"),
        ({"scale-intensity": "3"}, "valence"),
        (values(**{"scale-nope": "1"}), "nope"),
        (values(**{"scale-intensity": "2.5"}), "intensity"),
    ):
        response = c.post(url, bad)
        assert response.status_code == 400 and f'data-field="{field}"' in response.content.decode(), bad
    assert not Rating.objects.exists()
    # Ann rated in another tab meanwhile: the second submit is a conflict, nothing doubles.
    rating_create(
        image=image,
        scale=AssessmentScale.objects.get(dataset=dataset, key="arousal"),
        value=2,
        user=UserFactory(username="ann"),
    )
    assert c.post(url, values()).status_code == 409
    assert Rating.objects.count() == 1


def test_blind_mode_hides_model_scores_and_is_recorded(dataset):
    image = ImageFactory(dataset=dataset)
    rating_create(
        image=image,
        scale=AssessmentScale.objects.get(dataset=dataset, key="valence"),
        value=2,
        model_name="<i>gpt-4o</i>",
    )
    c = rater("ann")
    url = f"/qa/rate/rate-set/{image.pk}/"
    shown = c.get(url).content.decode()
    assert "Model &lt;i&gt;gpt-4o&lt;/i&gt;" in shown and "<i>gpt-4o" not in shown
    assert c.post("/qa/rate/rate-set/blind/", {"blind": "on", "next": url}).url == url
    hidden = c.get(url).content.decode()
    assert "gpt-4o" not in hidden and "Blind mode is <strong>on</strong>" in hidden
    c.post(url, values())
    assert set(Rating.objects.filter(rater_name="ann").values_list("blind", flat=True)) == {True}
    assert (
        c.post("/qa/rate/rate-set/blind/", {"blind": "on", "next": "https://evil.example/"}).url == "/qa/rate/rate-set/"
    )


def test_roles_and_csrf(dataset):
    image = ImageFactory(dataset=dataset)
    url = f"/qa/rate/rate-set/{image.pk}/"
    assert rater("rev", role="reviewer").get(url).status_code == 200
    for role in ("researcher", "adjudicator"):
        assert rater(role, role=role).get(url).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(UserFactory(username="ann", roles=["rater"]))
    assert strict.post(url, values()).status_code == 403
    assert not Rating.objects.exists()
    other = ImageFactory()
    assert rater("ann").get(f"/qa/rate/rate-set/{other.pk}/").status_code == 404  # another dataset's image
