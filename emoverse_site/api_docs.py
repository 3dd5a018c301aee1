"""The API's schema and docs for people: a logged-out browser is sent to the login page
(and back afterwards) instead of a bare 403. API clients keep their JSON answers: a
request with an Authorization header, or one to the schema that does not ask for HTML,
goes on to the view (401/403 JSON when not allowed)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse


def login_for_browsers(view: Callable[..., HttpResponse], *, html_only: bool = True) -> Callable[..., HttpResponse]:
    """``view`` with logged-out visitors redirected to the login page; with ``html_only``,
    only requests that ask for HTML (a browser), else every request without credentials."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        anonymous = not request.user.is_authenticated and "HTTP_AUTHORIZATION" not in request.META
        if anonymous and (not html_only or "text/html" in request.headers.get("Accept", "")):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped
