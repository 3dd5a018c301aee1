"""API tokens expire (EMOVERSE_TOKEN_TTL_HOURS), can be revoked (DELETE /api/auth/token/),
and are revoked by every kind of password change. Issue 13: tokens never expired and
survived a password change."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/auth/token/"
DATASETS_URL = "/api/datasets/"


def _new_token(api_client, username="rita", password=PASSWORD) -> str:
    answer = api_client.post(TOKEN_URL, {"username": username, "password": password}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["token"]


def _get(api_client, key, url=DATASETS_URL):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    try:
        return api_client.get(url)
    finally:
        api_client.credentials()


def _age(key: str, hours: float) -> None:
    Token.objects.filter(key=key).update(created=Token.objects.get(key=key).created - timedelta(hours=hours))


def test_the_token_lifetime_is_a_setting(settings):
    assert settings.EMOVERSE_TOKEN_TTL_HOURS == 720
    assert "annotations.tokens.ExpiringTokenAuthentication" in settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]


def test_a_token_is_the_same_until_it_expires_then_refused_with_401_and_replaced(api_client, rita, settings):
    key = _new_token(api_client)
    assert _new_token(api_client) == key
    assert _get(api_client, key).status_code == 200

    _age(key, settings.EMOVERSE_TOKEN_TTL_HOURS - 0.01)
    assert _get(api_client, key).status_code == 200
    _age(key, 0.02)
    expired = _get(api_client, key)
    assert expired.status_code == 401
    assert expired.json() == {"detail": "Token expired: ask for a new one with POST /api/auth/token/.", "field": None}
    assert expired["WWW-Authenticate"] == "Token"
    assert not Token.objects.filter(key=key).exists()

    fresh = _new_token(api_client)
    assert fresh != key and _get(api_client, fresh).status_code == 200


def test_an_expired_token_is_replaced_when_a_new_one_is_asked_for(api_client, rita, settings):
    key = _new_token(api_client)
    _age(key, settings.EMOVERSE_TOKEN_TTL_HOURS + 1)
    fresh = _new_token(api_client)
    assert fresh != key and list(Token.objects.values_list("key", flat=True)) == [fresh]


def test_ttl_zero_means_tokens_never_expire(api_client, rita, settings):
    settings.EMOVERSE_TOKEN_TTL_HOURS = 0
    key = _new_token(api_client)
    _age(key, 24 * 365 * 10)
    assert _get(api_client, key).status_code == 200


def test_delete_revokes_the_callers_token_only(api_client, rita):
    UserFactory(username="rhea", roles=["reviewer"])
    key, other = _new_token(api_client), _new_token(api_client, "rhea")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.delete(TOKEN_URL).status_code == 204
    api_client.credentials()
    revoked = _get(api_client, key)
    assert revoked.status_code == 401 and revoked.json() == {"detail": "Invalid token.", "field": None}
    assert _get(api_client, other).status_code == 200


def test_delete_needs_a_caller(api_client):
    answer = api_client.delete(TOKEN_URL)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Authentication credentials were not provided.", "field": None}


def test_a_session_caller_can_revoke_their_token(api_client, client, rita):
    key = _new_token(api_client)
    client.force_login(rita)
    assert client.delete(TOKEN_URL).status_code == 204
    assert _get(api_client, key).status_code == 401


def _set_password(user):
    user.set_password("a-new-password-456")
    user.save()


def _assign_hash(user):
    user.password = make_password("a-new-password-456")
    user.save()


def _admin_form(user):
    UserFactory(username="boss", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(type(user).objects.get(username="boss"))
    answer = admin.post(f"/django-admin/auth/user/{user.pk}/password/",
                        {"password1": "a-new-password-456", "password2": "a-new-password-456"})
    assert answer.status_code == 302, answer.content.decode()[:2000]


def _command(user, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a-new-password-456")
    call_command("changepassword", user.username, stdout=io.StringIO())


@pytest.mark.parametrize("change", [_set_password, _assign_hash, _admin_form, _command],
                         ids=["set_password", "hash-assigned", "admin-form", "changepassword-command"])
def test_a_password_change_revokes_the_token(api_client, rita, monkeypatch, change):
    key = _new_token(api_client)
    if change is _command:
        change(rita, monkeypatch)
    else:
        change(rita)
    assert not Token.objects.filter(user=rita).exists()
    assert _get(api_client, key).status_code == 401
    assert _new_token(api_client, password="a-new-password-456") != key


def test_saves_that_keep_the_password_keep_the_token(api_client, client, rita):
    key = _new_token(api_client)
    rita.first_name = "Rita"
    rita.save()
    client.post("/accounts/login/", {"username": "rita", "password": PASSWORD})  # writes last_login only
    rita.refresh_from_db()
    rita.save(update_fields=["email"])
    assert _get(api_client, key).status_code == 200


@pytest.mark.parametrize("roles", [[], ["reviewer"], ["reviewer", "admin", "adjudicator"]])
def test_one_statement_reads_the_token_its_user_and_only_the_known_roles(roles, django_assert_num_queries):
    """``token_with_user`` (a function on PostgreSQL, the plain join on SQLite): the same token
    and user as the ORM reads them, the user's roles cached, a group that is no role left out."""
    from django.contrib.auth.models import Group

    from annotations.roles import user_roles
    from annotations.tokens import token_with_user

    user = UserFactory(username="rowan", roles=roles)
    user.groups.add(Group.objects.get_or_create(name="not-a-role")[0])
    key = Token.objects.create(user=user).key
    with django_assert_num_queries(1):
        token = token_with_user(key)
        assert user_roles(token.user) == frozenset(roles)
    stored = Token.objects.select_related("user").get(key=key)
    assert (token.key, token.user_id, token.created) == (stored.key, stored.user_id, stored.created)
    assert {f.attname: getattr(token.user, f.attname) for f in type(user)._meta.concrete_fields} == \
           {f.attname: getattr(stored.user, f.attname) for f in type(user)._meta.concrete_fields}
    with django_assert_num_queries(1):
        assert token_with_user(key[:-1] + ("0" if key[-1] != "0" else "1")) is None


@pytest.mark.parametrize("key", ["abc\x00def", "a" * 41, "0123456789abcdef\x7f", "x y"])
def test_a_malformed_token_is_refused_with_401_without_a_query(key, django_assert_num_queries):
    """A key that cannot be a token (NUL, too long, not printable ASCII) is refused as an invalid
    token before the database sees it: PostgreSQL refused the NUL with an error (a 500)."""
    client = Client(raise_request_exception=False)
    with django_assert_num_queries(0):
        response = client.post("/api/review/next/", {"dataset": "x"}, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401
    assert response.json()["detail"] in ("Invalid token.", "Invalid token header. Token string should not contain spaces.")
