"""Site-wide request and response rules, named by dotted path in settings (no app imports
this module): bodies over the size limit, caching of private responses, the Content-Security-
Policy header, and the answer to a locked-out login (django-axes).
"""

from __future__ import annotations

from collections.abc import Callable

from axes.helpers import get_cool_off, get_lockout_message
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import has_vary_header, patch_cache_control


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _too_big(request: HttpRequest) -> HttpResponse:
    limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
    detail = f"The request body is larger than the {limit_mb:g} MB this server accepts."
    if _is_api(request):
        return JsonResponse({"detail": detail, "field": None}, status=413)
    return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """A request whose body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` gets 413 (JSON
    ``{"detail", "field": null}`` under /api/, plain text elsewhere), nothing written.

    A declared ``Content-Length`` is checked before anything reads the body; Django's own
    ``RequestDataTooBig`` (raised where a view reads it, e.g. a multipart form whose
    non-file fields are too large) gets the same answer instead of an HTML 400.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # Multipart bodies carry files, which Django does not count against the limit.
        if limit is not None and not request.content_type.startswith("multipart/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                return _too_big(request)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return _too_big(request) if isinstance(exception, RequestDataTooBig) else None


class PrivateCacheControlMiddleware:
    """``Cache-Control: private, no-store`` on every response that depends on who asks:
    a logged-in user (session or API token), an ``Authorization`` header, or a response
    that varies on the session cookie. A view that sets its own Cache-Control keeps it
    (image files: ``private, max-age=3600``); static files never reach this middleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        user = getattr(request, "user", None)  # the API sets it for token callers too
        if (
            (user is not None and user.is_authenticated)
            or "HTTP_AUTHORIZATION" in request.META
            or has_vary_header(response, "Cookie")
        ):
            patch_cache_control(response, private=True, no_store=True)
        return response


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the policies built once from the settings instead of on every
    response (issue 16: every API call paid for it). A response that changes its policy
    (``csp_update``, ``csp_replace``, ``csp_exempt`` and the like), a request that used a nonce,
    and a site with ``EXCLUDE_URL_PREFIXES`` go through django-csp's own path, unchanged; every
    other response gets the same headers django-csp would give it."""

    _RESPONSE_ATTRS = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro",
                       "_csp_replace_ro", "_csp_exempt", "_csp_exempt_ro")
    _policies: tuple[str, str] | None = None  # (policy, report-only policy); None: build on next use

    @classmethod
    def forget_policies(cls, *, setting: str = "", **kwargs) -> None:
        if setting.startswith("CONTENT_SECURITY_POLICY") or not setting:
            cls._policies = None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (getattr(request, "_csp_nonce", None) is not None or settings.DEBUG
                or any(hasattr(response, name) for name in self._RESPONSE_ATTRS)
                or _excludes_prefixes("CONTENT_SECURITY_POLICY") or _excludes_prefixes("CONTENT_SECURITY_POLICY_REPORT_ONLY")):
            return super().process_response(request, response)
        policies = ContentSecurityPolicyMiddleware._policies
        if policies is None:
            policies = ContentSecurityPolicyMiddleware._policies = (build_policy(), build_policy(report_only=True))
        for header, policy in zip((HEADER, HEADER_REPORT_ONLY), policies):
            if policy and header not in response:
                response[header] = policy
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # as django-csp does
        return response


def _excludes_prefixes(name: str) -> bool:
    return bool((getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES"))


setting_changed.connect(ContentSecurityPolicyMiddleware.forget_policies, dispatch_uid="emoverse-csp-policies")


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
