"""Every main page, as the role that uses it, in Debian's Chromium with the
Content-Security-Policy on: no ``securitypolicyviolation`` event and no CSP console error.
The Swagger UI at /api/docs/ (its own relaxed style-src) renders the schema.

Run: ``pytest -m browser tests/security/test_csp_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import pytest
from django.test import Client

from review import queue, selectors, services
from tests.agreement.scenes import build_scene
from tests.browser import BROWSER_MARKS, PASSWORD, log_in, sync_api
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer, image_in_review
from tests.review.scenes import review_item

pytestmark = BROWSER_MARKS

REPORT_VIOLATIONS = """
window.cspViolations = 0;
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations += 1;
  window.reportCspViolation(
    `${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber} ${e.sample}`);
});
"""


@pytest.fixture
def site(transactional_db, settings):
    """Data behind every page: a review item, a disputed item, an agreement study, a finished export."""
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 20
    storms = DatasetFactory(slug="storms", name="Storms at sea")
    item = review_item(storms, seed=1)
    pairs = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    disputed = image_in_review(pairs)
    for name, label in (("ann", "awe"), ("ben", "fear")):
        reviewer = UserFactory(username=name, roles=["reviewer"])
        lease = queue.lease_next(dataset=pairs, reviewer=reviewer)
        payload = selectors.lease_payload(lease)
        services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=human_answer(payload, label=label))
    build_scene(slug="study")
    for name, role in (("rita", "reviewer"), ("ada", "adjudicator"), ("rhea", "researcher")):
        UserFactory(username=name, roles=[role], password=PASSWORD)
    UserFactory(username="adam", roles=["admin"], password=PASSWORD, is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(UserFactory(username="adam"))
    started = admin.post("/api/exports/", {"dataset": "study", "format": "coco"}, content_type="application/json")
    assert started.status_code == 201 and admin.get(f"/api/exports/{started.json()['id']}/").json()["status"] == "complete"
    return {"item": item, "disputed": disputed}


class Visitor:
    """One logged-in browser context (from ``pages``) that records CSP violations, CSP console
    errors and page errors."""

    def __init__(self, pages, live_server, username: str | None):
        self.live_server = live_server
        self.pages = pages
        self.problems: list[str] = []
        self.context = pages.new_context()
        self.context.expose_function("reportCspViolation", lambda text: self.problems.append(text))
        self.context.add_init_script(REPORT_VIOLATIONS)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        if username:
            log_in(self.page, live_server, username=username, path="/")

    def _console(self, message) -> None:
        if message.type == "error" and ("Content Security Policy" in message.text or "Refused to" in message.text):
            self.problems.append(f"console: {message.text}")

    def visit(self, path: str, ready: str = "main") -> None:
        response = self.page.goto(f"{self.live_server.url}{path}")
        assert response.status == 200, (path, response.status)
        assert "default-src 'self'" in response.headers["content-security-policy"], path
        try:
            self.page.wait_for_selector(ready)
            self.page.wait_for_load_state("networkidle")
        except sync_api.TimeoutError:
            self.problems.append(f"{path}: never showed {ready!r}")

    def finish(self) -> list[str]:
        """The problems seen, once the reports the page sent so far are in (a round trip); closes the context."""
        self.page.evaluate("1")
        self.pages.close(self.context)
        return self.problems


def _try_an_operation(page) -> None:
    """In the Swagger UI: open GET /api/datasets/, try it out, show the answer."""
    page.locator(".opblock-get .opblock-summary-path[data-path='/api/datasets/']").first.click()
    page.locator(".try-out__btn").first.click()
    page.locator(".btn.execute").first.click()
    page.locator(".live-responses-table .response-col_status", has_text="200").first.wait_for()


def _choose_a_dataset(page) -> None:
    """The adjudication queue's dataset menu submits its form when it changes (static/js/submit_on_change.js)."""
    page.select_option("select[name=dataset]", "pairs")
    page.wait_for_url("**/review/adjudication/?dataset=pairs")


def test_no_page_violates_the_content_security_policy(site, pages, live_server):
    item, disputed = site["item"], site["disputed"]
    visits = {
        None: [("/accounts/login/", "form")],
        "rita": [
            ("/", "main"), ("/datasets/", "main"), ("/datasets/storms/", ".grid"), ("/review/", ".review-index"),
            ("/review/storms/", "#panels .element"), (f"/review/images/{item.pk}/", ".bars"),
            ("/api/docs/", ".swagger-ui .opblock-tag", _try_an_operation),
        ],
        "ada": [("/review/adjudication/", "main", _choose_a_dataset), (f"/review/adjudication/{disputed.pk}/", "#adj-final .adj-labels button")],
        "rhea": [("/agreement/", "main"), ("/agreement/study/", "svg.plot"), ("/agreement/calibration/", "main"),
                 ("/review/disagreements/", "#disagreement-table")],
        "adam": [("/pipeline/study/", "#pipeline-progress"), ("/exports/", "#export-table"), ("/django-admin/", "#content"),
                 (f"/django-admin/annotations/image/{item.pk}/change/", "#content")],
    }
    problems = []
    for username, paths in visits.items():
        visitor = Visitor(pages, live_server, username)
        for path, ready, *then in paths:
            visitor.visit(path, ready)
            for action in then:
                action(visitor.page)
        problems += visitor.finish()
    assert problems == []


def test_the_probe_sees_a_violation(site, pages, live_server):
    """The listener above does catch what the policy blocks (an inline style attribute)."""
    visitor = Visitor(pages, live_server, None)
    visitor.visit("/accounts/login/", "form")
    visitor.page.evaluate("document.body.setAttribute('style', 'color: red')")
    visitor.page.wait_for_function("window.cspViolations > 0")
    assert visitor.page.evaluate("getComputedStyle(document.body).color") != "rgb(255, 0, 0)"  # blocked
    problems = visitor.finish()
    assert any("style-src" in p for p in problems), problems
