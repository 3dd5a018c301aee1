"""An import never replaces work made in the app: a review, or a model answer the pipeline made,
stays current (also one made while the batch was being prepared); an external human annotator
is imported again as before."""

from __future__ import annotations

import pytest

from annotations.models import Annotation, AnnotationKind, Image
from tests.annotations.test_import import Workspace
from tests.factories import UserFactory, make_annotation

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


def _app_review(image: Image, username: str, **payload_kwargs) -> Annotation:
    """A review made in the app by ``username`` (through the same service the review pages use)."""
    user = UserFactory(username=username, roles=["reviewer"])
    return make_annotation(image, kind=AnnotationKind.HUMAN, author_name=username, author_user=user,
                           payload_kwargs=payload_kwargs)


def test_an_import_never_replaces_a_review_made_in_the_app(ws):
    name, other = ws.add_png("a.png", seed=1), ws.add_png("b.png", seed=2)
    ws.run([ws.line(name), ws.line(other)])
    review = _app_review(Image.objects.get(original_name=name), "alice", label="awe")
    report = ws.run([ws.line(name, annotator="alice", kind="human", label="sadness"),
                     ws.line(name, annotator="gpt-4o", label="sadness"),
                     ws.line(other, annotator="alice", kind="human", label="sadness")])
    assert (report.imported, report.failed) == (2, 1)
    assert [e.as_dict() for e in report.errors] == [{"line": 1, "reason": (
        "image already has a review by alice made in this app; an import never replaces it "
        "(import under another annotator name)")}]
    review.refresh_from_db()
    assert review.is_current and review.ces_label == "awe"
    current = Annotation.objects.filter(image__original_name=name, is_current=True)
    assert sorted(current.values_list("author_name", "ces_label")) == [("alice", "awe"), ("gpt-4o", "sadness")]
    # The other image has no review by alice made in the app: the import's alice goes in there.
    assert Annotation.objects.get(image__original_name=other, author_name="alice").import_run == report.run


def test_an_import_never_replaces_a_model_answer_the_pipeline_made_in_the_app(ws):
    name = ws.add_png("a.png", seed=1)
    ws.run([{"image": name}])
    in_app = make_annotation(Image.objects.get(), author_name="gpt-4o", payload_kwargs={"label": "awe"})  # as ml.save does
    report = ws.run([ws.line(name, annotator="gpt-4o", label="sadness"), ws.line(name, annotator="gpt-4o-batch")])
    assert (report.imported, report.failed) == (1, 1)
    assert report.errors[0].reason.startswith("image already has a model annotation by gpt-4o made in this app")
    in_app.refresh_from_db()
    assert in_app.is_current


def test_a_review_made_while_the_batch_was_prepared_is_not_replaced_either(ws, monkeypatch):
    """The check before the batch's write sees a review the line's own check missed (made in the
    meantime): the batch is imported again line by line and that line fails."""
    from annotations.importers import batch_write

    name = ws.add_png("a.png", seed=1)
    ws.run([ws.line(name)])
    review = _app_review(Image.objects.get(), "alice", label="awe")
    real, calls = batch_write._current_versions, []

    def misses_it_once(keys):  # the lines' check misses it; the check before the write does not
        calls.append(keys)
        return {} if len(calls) == 1 else real(keys)

    monkeypatch.setattr(batch_write, "_current_versions", misses_it_once)
    report = ws.run([ws.line(name, annotator="alice", kind="human", label="sadness"), ws.line(name, annotator="bob", kind="human")])
    assert (report.imported, report.failed) == (1, 1)
    assert report.errors[0].line == 1 and "review by alice made in this app" in report.errors[0].reason
    review.refresh_from_db()
    assert review.is_current and review.ces_label == "awe"


def test_an_external_human_annotator_is_reimported_as_before(ws):
    """Versions from imports replace versions from imports: the same file is a duplicate, a
    newer file from the same annotator makes a new version."""
    name = ws.add_png("a.png", seed=1)
    first = ws.run([ws.line(name, annotator="alice", kind="human", label="fear")])
    again = ws.run()
    newer = ws.run([ws.line(name, annotator="alice", kind="human", label="sadness")])
    assert [(r.imported, r.duplicates, r.failed) for r in (first, again, newer)] == [(1, 0, 0), (0, 1, 0), (1, 0, 0)]
    versions = list(Annotation.objects.order_by("version").values_list("author_name", "ces_label", "is_current"))
    assert versions == [("alice", "fear", False), ("alice", "sadness", True)]
