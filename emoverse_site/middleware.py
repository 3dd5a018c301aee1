"""Site-wide request and response rules, named by dotted path in settings (no app imports
this module): the answer to a locked-out login (django-axes).
"""

from __future__ import annotations

from axes.helpers import get_cool_off, get_lockout_message
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """django-axes' answer to a login of a locked-out username (``AXES_LOCKOUT_CALLABLE``):
    429, JSON ``{"detail", "field": null}`` under /api/, else the login page saying why."""
    detail = get_lockout_message()
    if _is_api(request):
        response = JsonResponse({"detail": detail, "field": None}, status=settings.AXES_HTTP_RESPONSE_CODE)
    else:
        form = AuthenticationForm(request, initial={"username": (credentials or {}).get("username", "")})
        context = {"form": form, "locked_out": detail, "next": request.POST.get("next", request.GET.get("next", ""))}
        response = render(request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    cool_off = get_cool_off(request)
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
