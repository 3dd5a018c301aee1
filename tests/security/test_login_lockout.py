"""Password guessing is limited on every login path (django-axes, per username): after
EMOVERSE_LOGIN_FAILURE_LIMIT wrong passwords the username is refused, even with the right
password, until the cool-off has passed. Issue 13: 200 wrong, then right, gave 200."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/auth/token/"
LOGIN_URL = "/accounts/login/"


def _token(client, username, password):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json")


def _form(client, username, password):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/"})


def _after_cool_off():
    """Move every recorded failure back past the cool-off, as if that much time had passed."""
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def test_the_limit_and_cool_off_come_from_settings():
    assert settings.AXES_FAILURE_LIMIT == settings.EMOVERSE_LOGIN_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=settings.EMOVERSE_LOGIN_COOLOFF_MINUTES) == timedelta(minutes=15)


def test_token_endpoint_refuses_the_right_password_after_200_wrong_ones(api_client, rita):
    limit = settings.AXES_FAILURE_LIMIT
    answers = [_token(api_client, "rita", f"guess-{i}") for i in range(200)]
    assert [r.status_code for r in answers] == [400] * (limit - 1) + [429] * (200 - limit + 1)
    assert answers[0].json() == {"detail": "Unable to log in with the username and password given.", "field": None}

    right = _token(api_client, "rita", PASSWORD)
    assert right.status_code == 429
    assert right.json() == {"detail": "Too many failed logins for this username: try again in 15 minutes.", "field": None}
    assert right["Retry-After"] == "900"
    assert not Token.objects.filter(user=rita).exists()


def test_login_form_refuses_the_right_password_after_200_wrong_ones(client, rita):
    answers = [_form(client, "rita", f"guess-{i}") for i in range(200)]
    assert {r.status_code for r in answers[: settings.AXES_FAILURE_LIMIT - 1]} == {200}  # the form again, with its error
    assert {r.status_code for r in answers[settings.AXES_FAILURE_LIMIT:]} == {429}

    right = _form(client, "rita", PASSWORD)
    assert right.status_code == 429
    html = right.content.decode()
    assert 'role="alert">Too many failed logins for this username: try again in 15 minutes.</p>' in html
    assert '<form method="post">' in html  # still the login page
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # not logged in


def test_a_correct_login_after_the_cool_off_works(client, api_client, rita):
    for i in range(settings.AXES_FAILURE_LIMIT):
        _token(api_client, "rita", f"guess-{i}")
    assert _token(api_client, "rita", PASSWORD).status_code == 429
    assert _form(client, "rita", PASSWORD).status_code == 429

    _after_cool_off()
    answer = _token(api_client, "rita", PASSWORD)
    assert answer.status_code == 200 and answer.json()["token"] == Token.objects.get(user=rita).key
    login = _form(client, "rita", PASSWORD)
    assert login.status_code == 302 and login["Location"] == "/"
    assert client.session["_auth_user_id"] == str(rita.pk)


def test_wrong_passwords_on_the_form_and_the_api_count_together(client, api_client, rita):
    half = settings.AXES_FAILURE_LIMIT // 2
    for i in range(half):
        _form(client, "rita", f"form-{i}")
    for i in range(settings.AXES_FAILURE_LIMIT - half):
        _token(api_client, "rita", f"api-{i}")
    assert _token(api_client, "rita", PASSWORD).status_code == 429
    assert _form(client, "rita", PASSWORD).status_code == 429


def test_a_successful_login_resets_the_count(api_client, rita):
    for _ in range(3):
        for i in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _token(api_client, "rita", f"typo-{i}").status_code == 400
        assert _token(api_client, "rita", PASSWORD).status_code == 200


def test_the_lockout_is_per_username(api_client, rita):
    UserFactory(username="rhea")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _token(api_client, "rita", f"guess-{i}")
    assert _token(api_client, "rita", PASSWORD).status_code == 429
    assert _token(api_client, "rhea", PASSWORD).status_code == 200


def test_the_limit_is_a_setting(api_client, rita, settings):
    settings.AXES_FAILURE_LIMIT = 3
    assert [_token(api_client, "rita", f"g{i}").status_code for i in range(3)] == [400, 400, 429]


@pytest.mark.parametrize(("body", "field"), [
    ({"password": PASSWORD}, "username"),
    ({"username": "rita"}, "password"),
    ({"username": "r" * 151, "password": PASSWORD}, "username"),
    ({"username": "rita\ud83d", "password": PASSWORD}, "username"),
    ({"username": "rita\x00", "password": PASSWORD}, "username"),
])
def test_bad_token_requests_are_a_400_naming_the_field(api_client, rita, body, field):
    answer = api_client.post(TOKEN_URL, json.dumps(body), content_type="application/json")  # \ud83d stays escaped
    assert answer.status_code == 400
    assert answer.json()["field"] == field and answer.json()["detail"].startswith(f"{field}: ")
    assert not AccessAttempt.objects.exists()
