"""The Content-Security-Policy header (django-csp) and the templates it relies on: no
inline script, style element, style attribute or event-handler attribute anywhere.
The browser check of every page is test_csp_browser.py. Issue 13: no CSP at all."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

import emoverse_site.settings as site_settings
from tests.factories import UserFactory

POLICY = {"default-src": "'self'", "img-src": "'self' data: blob:", "script-src": "'self'", "style-src": "'self'",
          "object-src": "'none'", "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'"}
TEMPLATES = Path(settings.BASE_DIR) / "templates"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/", "/review/", "/api/docs/", "/api/docs/?script=", "/api/datasets/"])
def test_every_answer_carries_the_policy(url):
    client = Client()
    if url != "/accounts/login/":
        client.force_login(UserFactory(username="boss", roles=["reviewer", "admin"]))
    response = client.get(url)
    assert response.status_code == 200, url
    directives = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert directives == POLICY


@pytest.mark.django_db
def test_the_swagger_ui_loads_its_start_script_and_styles_from_files():
    client = Client()
    client.force_login(UserFactory(username="boss", roles=["reviewer"]))
    html = client.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script="></script>' in html
    assert "<style" not in html and "<script>" not in html
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript") and b"SwaggerUIBundle" in script.content


def test_object_storage_origins_may_serve_images(monkeypatch):
    """The image views redirect to object storage: its origin is in img-src (settings reads it)."""
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", "pictures")
    monkeypatch.setenv("AWS_S3_CUSTOM_DOMAIN", "cdn.example.org")
    monkeypatch.setenv("EMOVERSE_CSP_IMG_SRC", "https://img.example.net")
    try:
        reloaded = importlib.reload(site_settings)
        assert reloaded.CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"] == [
            "'self'", "data:", "blob:", "https://cdn.example.org", "https://img.example.net"]
    finally:
        monkeypatch.undo()
        importlib.reload(site_settings)


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(?!\s*</script>)", re.I), "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event-handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")))
def test_templates_have_nothing_inline(template):
    text = (TEMPLATES / template).read_text()
    text = re.sub(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}|\{#.*?#\}", "", text, flags=re.S)
    text = re.sub(r'<script type="application/json"[^>]*>', "", text)  # data blocks (json_script) are not run
    found = [what for pattern, what in INLINE if pattern.search(text)]
    assert found == [], template


@pytest.mark.django_db
def test_the_policy_built_once_is_django_csps_and_follows_the_settings(settings):
    """emoverse_site.middleware.ContentSecurityPolicyMiddleware builds the policies once (issue 16);
    they are django-csp's own, on API answers too, and a change of the settings is seen."""
    from csp.utils import build_policy

    client = Client()
    client.force_login(UserFactory(username="boss", roles=["reviewer"]))
    assert client.get("/api/datasets/")["Content-Security-Policy"] == build_policy()
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"img-src": ["'self'"]}}
    response = client.get("/api/datasets/")
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert response["Content-Security-Policy-Report-Only"] == build_policy(report_only=True)
    assert "img-src 'self'" in response["Content-Security-Policy-Report-Only"]
