"""Roles are Django groups. Every view and API endpoint checks one.

``reviewer`` works the review queue, ``adjudicator`` resolves conflicts,
``researcher`` reads agreement and data views, ``admin`` runs datasets, the
pipeline, exports and users. Superusers hold every role. The names are
:data:`core.vocabulary.USER_ROLES` (and ``REVIEWER`` ... ``ADMIN`` there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from core.vocabulary import USER_ROLES


def ensure_role_groups() -> None:
    for name in USER_ROLES:
        Group.objects.get_or_create(name=name)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The user's roles, cached on the user object for the request."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_emoverse_roles", None)
    if cached is None or user.is_superuser:
        if user.is_superuser:
            cached = frozenset(USER_ROLES)
        else:
            cached = frozenset(user.groups.filter(name__in=USER_ROLES).values_list("name", flat=True))
        user._emoverse_roles = cached
    return cached


def remember_role_names(user: AbstractBaseUser, names: Iterable[str]) -> None:
    """Cache on ``user`` the roles read with the row that authenticates the request (the token's:
    ``annotations.tokens.token_with_user``), so :func:`user_roles` needs no query of its own."""
    user._emoverse_roles = frozenset(name for name in names if name in USER_ROLES)


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    """True when the user holds at least one of ``roles``."""
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """View decorator: login required, then one of ``roles``, else 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied(f"This page needs the role: {' or '.join(roles)}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class HasRole(BasePermission):
    """DRF permission: set ``required_roles`` on the view (any one suffices)."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        roles = getattr(view, "required_roles", None)
        if not roles:
            return False  # fail closed: an endpoint that forgot to declare roles is closed
        return has_role(request.user, *roles)


def roles_permission(*roles: str) -> type[BasePermission]:
    """A DRF permission class for the given roles, for views with per-method needs."""
    return type(f"Has_{'_'.join(roles)}", (BasePermission,), {
        "message": f"This needs the role: {' or '.join(roles)}.",
        "has_permission": lambda self, request, view: has_role(request.user, *roles),
    })
