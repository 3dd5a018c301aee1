"""API tokens (``Authorization: Token <key>``) that expire, can be revoked, and are revoked
when the user's password changes.

A token expires ``EMOVERSE_TOKEN_TTL_HOURS`` after it was issued (0: never); an expired
token answers 401 and is deleted, and the next ``POST /api/auth/token/`` issues a new one.
The password rule watches the stored hash on every save of a user (the login form's
password change, the Django admin, ``manage.py changepassword``, ``set_password`` in code),
so it catches every way a password changes except a raw ``QuerySet.update()``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotations.roles import remember_roles, with_roles


def token_is_expired(token: Token, *, now: datetime | None = None) -> bool:
    ttl_hours = settings.EMOVERSE_TOKEN_TTL_HOURS
    if ttl_hours <= 0:
        return False
    return token.created <= (now or timezone.now()) - timedelta(hours=ttl_hours)


def token_for_user(*, user) -> Token:
    """The user's token: the one they have while it is valid, else a new one."""
    token, _ = Token.objects.get_or_create(user=user)
    if token_is_expired(token):
        Token.objects.filter(key=token.key).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token


def tokens_revoke(*, user) -> int:
    """Delete the user's API token(s); returns how many there were."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing (401) and deleting a token past its lifetime. The
    token, its user and the user's roles are read in one query (``annotations.roles.with_roles``)."""

    def authenticate_credentials(self, key):
        token = with_roles(Token.objects.select_related("user"), "user").filter(key=key).first()
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user = token.user
        remember_roles(user, token)
        if token_is_expired(token):
            Token.objects.filter(key=token.key).delete()
            raise exceptions.AuthenticationFailed("Token expired: ask for a new one with POST /api/auth/token/.")
        return user, token


# --- revoke on password change ---------------------------------------------------------
_HASH_BEFORE = "_emoverse_password_hash_before_save"


def _remember_password_hash(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    before = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    setattr(instance, _HASH_BEFORE, before)


def _revoke_tokens_if_password_changed(sender, instance, created=False, raw=False, **kwargs) -> None:
    before = instance.__dict__.pop(_HASH_BEFORE, None)
    if not raw and not created and before is not None and before != instance.password:
        tokens_revoke(user=instance)


def connect_signals() -> None:
    """Called once from ``AnnotationsConfig.ready``."""
    user_model = get_user_model()
    pre_save.connect(_remember_password_hash, sender=user_model, dispatch_uid="emoverse-password-hash-before")
    post_save.connect(_revoke_tokens_if_password_changed, sender=user_model, dispatch_uid="emoverse-revoke-tokens")
