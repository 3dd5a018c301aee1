"""API tokens (``Authorization: Token <key>``) that expire, can be revoked, and are revoked
when the user's password changes.

A token expires ``EMOVERSE_TOKEN_TTL_HOURS`` after it was issued (0: never); an expired
token answers 401 and is deleted, and the next ``POST /api/auth/token/`` issues a new one.
The password rule watches the stored hash on every save of a user (the login form's
password change, the Django admin, ``manage.py changepassword``, ``set_password`` in code),
so it catches every way a password changes except a raw ``QuerySet.update()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from annotations.prepared import array_literal, pipeline, pipeline_supported, prepared_cursor, unprepared_after
from annotations.roles import remember_role_names
from core.vocabulary import USER_ROLES


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


@cache
def _token_user_sql() -> tuple[str, list[str], list[str], bool]:
    """The statement that reads a token, its user and the user's roles, the attribute names of
    the token's and the user's columns in the order it returns them, and whether it returns the
    roles as one array (one row) rather than one row per role the user holds (one row with a NULL
    role when none). Built once from the models' metadata. On PostgreSQL it calls
    ``emoverse_token_user`` (migration ``annotations.0011``), whose plan the server keeps."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    token_fields = [f for f in Token._meta.concrete_fields]
    user_fields = [f for f in user_model._meta.concrete_fields]
    names = [f.attname for f in token_fields], [f.attname for f in user_fields]
    if connection.vendor == "postgresql" and user_model._meta.db_table == "auth_user":
        columns = [f"(r.token).{quote(f.column)}" for f in token_fields] + [f"(r.account).{quote(f.column)}" for f in user_fields]
        return f"SELECT {', '.join(columns)}, r.roles FROM emoverse_token_user(%s::text, %s::text[]) r", *names, True
    membership = Group.user_set.through._meta
    member_user = quote(membership.get_field("user").column)
    member_group = quote(membership.get_field("group").column)
    columns = [f"t.{quote(f.column)}" for f in token_fields] + [f"u.{quote(f.column)}" for f in user_fields]
    placeholders = ", ".join(["%s"] * len(USER_ROLES))
    sql = (
        f"SELECT {', '.join(columns)}, g.{quote('name')} FROM {quote(Token._meta.db_table)} t "
        f"JOIN {quote(user_model._meta.db_table)} u ON u.{quote(user_model._meta.pk.column)} = t.{quote(Token._meta.get_field('user').column)} "
        f"LEFT JOIN ({quote(membership.db_table)} ug JOIN {quote(Group._meta.db_table)} g "
        f"ON g.{quote(Group._meta.pk.column)} = ug.{member_group} AND g.{quote('name')} IN ({placeholders})) "
        f"ON ug.{member_user} = u.{quote(user_model._meta.pk.column)} "
        f"WHERE t.{quote(Token._meta.get_field('key').column)} = %s"
    )
    return sql, *names, False


def _converted(values: tuple) -> list:
    """``values`` (the token's and the user's columns) as the ORM would read them: the database
    backend's converters (SQLite returns datetimes as text) and the fields' ``from_db_value``,
    listed once per connection (PostgreSQL needs none for these fields)."""
    converters = getattr(connection, "_emoverse_token_converters", None)
    if converters is None:
        fields = [*Token._meta.concrete_fields, *get_user_model()._meta.concrete_fields]
        converters = []
        for i, field in enumerate(fields):
            col = field.cached_col
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                converters.append((i, col, found))
        connection._emoverse_token_converters = converters
    out = list(values)
    for i, col, found in converters:
        for convert in found:
            out[i] = convert(out[i], col, connection)
    return out


@dataclass
class ReadWithToken:
    """A read-only statement a view hands to the token authentication (set on the request as
    :data:`READ_WITH_TOKEN` before authentication), to be sent in the same round trip as the
    token's statement on PostgreSQL: ``rows`` are its rows once sent, and stay ``None`` when it
    was not (a session, SQLite, no token). The rows are the view's to use only once the request
    is authenticated and allowed: the authentication never looks at them, and a refused request
    never reaches the view. Being a read, sending it for a request then refused changes nothing."""

    sql: str
    params: list
    rows: list[tuple] | None = None


READ_WITH_TOKEN = "emoverse_read_with_token"  # attribute of the HttpRequest


def _first_read(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """The rows of each of the read-only ``statements`` (sent together, in one round trip: in a
    pipeline of prepared statements, ``annotations.prepared``, else as one text of several
    statements, which needs client-side binding; with neither only the first is sent and the
    result has its rows alone), the first usually a request's first use of its connection,
    standing in for Django's health check (``CONN_HEALTH_CHECKS``: a ``SELECT 1`` before the first
    statement of a request on a connection kept from an earlier one). When the check is still to
    be done, this statement is sent instead of it; should it fail on a connection that is no longer
    usable (a restart, a failover), the connection is closed and the statement sent once more on a
    new one, as the check would have had it. Being a read, sending it again changes nothing. One
    round trip per API request fewer; the guarantee is the check's: a connection that died between
    requests costs no request (``tests/security/test_db_health.py``)."""
    checking = (connection.connection is not None and connection.health_check_enabled
                and not connection.health_check_done and not connection.in_atomic_block)
    if checking:
        connection.health_check_done = True  # done by this statement
    try:
        return _read(statements)
    except DatabaseError:
        if not checking or connection.is_usable():
            raise
    connection.close()
    return _read(statements)


def _read(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    cursor = prepared_cursor() if len(statements) == 1 or pipeline_supported() else None
    if cursor is not None:
        if len(statements) == 1:
            with cursor:
                cursor.execute(*statements[0])
                return [cursor.fetchall()]
        cursors = [cursor, *(prepared_cursor() for _ in statements[1:])]
        try:
            with pipeline():
                for each, (sql, params) in zip(cursors, statements):
                    each.execute(sql, params)
            return [each.fetchall() for each in cursors]
        except DatabaseError as error:
            if not unprepared_after(error):
                raise
        finally:
            for each in cursors:
                each.close()
    if connection.settings_dict["OPTIONS"].get("server_side_binding") is True:
        statements = statements[:1]  # the extended protocol takes one statement at a time
    with connection.cursor() as cursor:
        cursor.execute("; ".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        out = [cursor.fetchall()]
        while len(out) < len(statements) and cursor.nextset():
            out.append(cursor.fetchall())
    return out


def token_with_user(key: str, read: ReadWithToken | None = None) -> Token | None:
    """The token with this key and its user (``token.user``), the user's roles cached on them
    (``annotations.roles.user_roles`` needs no query), or None: one statement, written once
    rather than compiled by the ORM on every request (this runs before every API call). On
    PostgreSQL ``read`` goes in the same round trip, its rows set on it."""
    sql, token_names, user_names, as_array = _token_user_sql()
    params: list[Any] = [key, array_literal(USER_ROLES)] if as_array else [*USER_ROLES, key]
    results = _first_read([(sql, params), *([(read.sql, read.params)] if read is not None and as_array else [])])
    rows = results[0]
    if len(results) > 1:
        read.rows = results[1]
    if not rows:
        return None
    n = len(token_names)
    values = _converted(rows[0][:n + len(user_names)])
    token = Token.from_db(connection.alias, token_names, values[:n])
    token.user = get_user_model().from_db(connection.alias, user_names, values[n:])
    remember_role_names(token.user, rows[0][-1] if as_array else [row[-1] for row in rows if row[-1] is not None])
    return token


_KEY_LENGTH = Token._meta.get_field("key").max_length


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing (401) and deleting a token past its lifetime. The
    token, its user and the user's roles are read in one statement (:func:`token_with_user`),
    sent with the view's :class:`ReadWithToken` where the view set one."""

    _read: ReadWithToken | None = None

    def authenticate(self, request):
        # DRF makes the authenticators anew for each request: this one's read is this request's.
        self._read = getattr(request._request, READ_WITH_TOKEN, None)
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        # A key no token can have (NUL, which PostgreSQL refuses with an error; too long; not
        # printable ASCII) is an invalid token, answered without a query.
        if not (len(key) <= _KEY_LENGTH and key.isascii() and key.isprintable()):
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = token_with_user(key, self._read)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user = token.user
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
