"""``import_qa``: every bad line reported with its number, good lines kept, duplicates skipped,
the text policy of the annotation import, element links, and the round trip through the
``qa-jsonl`` export."""

from __future__ import annotations

import io
import json

import orjson
import pytest
from django.core.management import CommandError, call_command

from annotations.models import Element
from qa.importers.jsonl import import_qa_jsonl
from qa.models import QAImportRun, QAPair, QAStatus
from tests.factories import DatasetFactory, ImageFactory, make_annotation

pytestmark = pytest.mark.django_db


def _line(img, **over):
    base = {
        "image": img.original_name,
        "category": "perception",
        "dimension": "scene",
        "type": "multiple_choice",
        "question": "Which emotion does the scene evoke?",
        "options": ["awe", "fear", "sadness"],
        "answer": 1,
        "model": "gpt-4o",
        "prompt_version": "qa_v1",
    }
    base.update(over)
    return json.dumps(base, ensure_ascii=False)


def _run(lines, dataset, **kwargs):
    data = "\n".join(lines).encode("utf-8") + b"\n"
    return import_qa_jsonl(io.BytesIO(data), dataset=dataset, file_name="t.jsonl", run_by="tester", **kwargs)


@pytest.fixture
def images():
    dataset = DatasetFactory()
    return [ImageFactory(dataset=dataset) for _ in range(2)]


def test_every_bad_line_is_reported_and_good_lines_kept(images):
    a, b = images
    lines = [
        _line(a),  # 1 ok
        "{not json",  # 2
        _line(a, category="mood"),  # 3 unknown category
        _line(a, question="Is it sad?", type="yes_no", options=None, answer="perhaps"),  # 4 bad yes/no
        _line(b, image="img/none.png"),  # 5 unknown image
        '{"image": "x", "question": "\\ud83d"}',  # 6 unpaired surrogate
        _line(b, question="a\u0000b"),  # 7 NUL
        _line(b, colour="red"),  # 8 unknown key
        _line(b, answer=7),  # 9 index out of range
        _line(
            b, type="open", category="reasoning", options=None, answer="Because of the dark sky.", question="Why?"
        ),  # 10 ok
        _line(a, question="  which EMOTION does the scene   evoke? "),  # 11 duplicate of line 1
        _line(b, status="rejected"),  # 12 rejected without reason
        '{"image": "x", "answer": NaN}',  # 13 NaN
        "[1, 2]",  # 14 not an object
    ]
    report = _run(lines, images[0].dataset)
    failed = {e.line: e.reason for e in report.errors}
    assert set(failed) == {2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14}
    assert "unknown category 'mood'" in failed[3]
    assert failed[4].startswith("answer:")
    assert "no image 'img/none.png'" in failed[5]
    assert "unpaired surrogate" in failed[6]
    assert "NUL" in failed[7]
    assert "'colour'" in failed[8]
    assert "not finite" in failed[13]
    assert (report.imported, report.duplicates, report.failed) == (2, 1, 11)
    run = QAImportRun.objects.get()
    assert (run.imported, run.duplicates, run.failed, len(run.errors)) == (2, 1, 11, 11)
    assert QAPair.objects.filter(import_run=run, status=QAStatus.PENDING).count() == 2
    # Importing the same file again adds nothing: every good line is now a duplicate.
    again = _run(lines, images[0].dataset)
    assert (again.imported, again.duplicates) == (0, 3)


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "bulk_create"])
def test_batches_dedupe_across_and_within(images, monkeypatch, copy):
    monkeypatch.setattr("qa.importers.copy_write.USE_COPY", copy)
    a, _ = images
    lines = [_line(a, question=f"Question {i % 7}?") for i in range(20)]
    report = _run(lines, a.dataset, batch_size=3)
    assert (report.imported, report.duplicates, report.failed) == (7, 13, 0)


def test_elements_keys_and_status(images):
    a, b = images
    annotation = make_annotation(a)
    subject = Element.objects.get(triplet__annotation=annotation, role="subject")
    key = "5b1f8a38-8c4e-4c1e-9a53-0ad1a5c1e111"
    lines = [
        _line(a, key=key, elements=[{"triplet": 0, "role": "subject"}], status="rejected", reject_reason="ambiguous"),
        _line(
            a,
            question="Other?",
            elements=[{"triplet": str(subject.triplet.key), "role": "subject"}],
            critic_agrees=False,
        ),
        _line(b, question="Third?", elements=[{"triplet": 0, "role": "subject"}]),  # b has no annotation
        _line(b, question="Fourth?", key=key),  # key already used (by line 1)
    ]
    report = _run(lines, a.dataset, approved=True)
    assert [e.line for e in report.errors] == [3]
    assert report.duplicates == 1
    first = QAPair.objects.get(key=key)
    assert (first.status, first.reject_reason) == ("rejected", "ambiguous")
    assert list(first.elements.all()) == [subject]
    other = QAPair.objects.get(question="Other?")
    assert other.status == "accepted" and other.critic_agrees is False and other.priority == 0.0
    assert list(other.elements.all()) == [subject]


def test_command_reports_lines_and_fails(images, tmp_path, capsys):
    a, _ = images
    path = tmp_path / "qa.jsonl"
    path.write_text(_line(a) + "\n" + "oops\n", encoding="utf-8")
    errors = tmp_path / "errors.jsonl"
    with pytest.raises(CommandError, match="1 line"):
        call_command("import_qa", str(path), "--dataset", a.dataset.slug, "--errors-file", str(errors))
    assert "line 2:" in capsys.readouterr().err
    assert [orjson.loads(x)["line"] for x in errors.read_text().splitlines()] == [2]
    assert QAPair.objects.count() == 1
    assert QAImportRun.objects.get().errors == [
        {"line": 2, "reason": "not valid JSON: Expecting value: line 1 column 1 (char 0)"}
    ]
    with pytest.raises(CommandError, match="no dataset"):
        call_command("import_qa", str(path), "--dataset", "nope")


def test_export_round_trip(images, tmp_path, settings):
    a, b = images
    make_annotation(a)
    lines = [
        _line(a, elements=[{"triplet": 0, "role": "background"}], rationale="The storm."),
        _line(b, type="yes_no", options=None, answer="no", question="Is it calm?", status="accepted"),
        _line(b, question="Rejected?", status="rejected", reject_reason="duplicate"),
        _line(b, question="Pending?"),
    ]
    _run(lines, a.dataset)
    QAPair.objects.filter(question__startswith="Which").update(status=QAStatus.EDITED)
    out = tmp_path / "out"
    call_command("export_dataset", "--dataset", a.dataset.slug, "--format", "qa-jsonl", "--out", str(out))
    exported = [orjson.loads(x) for x in (out / "qa.jsonl").read_text().splitlines()]
    assert [row["question"] for row in exported] == ["Which emotion does the scene evoke?", "Is it calm?"]
    assert exported[0]["elements"][0]["role"] == "background" and exported[0]["answer"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["pairs"] == 2 and manifest["left_out"] == {"qa_pairs_not_selected": 2}
    assert [f["path"] for f in manifest["files"]] == ["qa.jsonl"] and len(manifest["files"][0]["sha256"]) == 64

    # Every current pair, exported and imported again: the same pairs, keys, statuses and element links.
    everything = tmp_path / "all"
    call_command(
        "export_dataset",
        "--dataset",
        a.dataset.slug,
        "--format",
        "qa-jsonl",
        "--pairs",
        "current",
        "--out",
        str(everything),
    )
    before = sorted(QAPair.objects.values_list("key", "status", "question", "answer_index", "answer", "elements__role"))
    QAPair.objects.all().delete()
    with open(everything / "qa.jsonl", "rb") as stream:
        report = import_qa_jsonl(stream, dataset=a.dataset, file_name="all", run_by="t")
    assert (report.imported, report.failed) == (4, 0)
    after = sorted(QAPair.objects.values_list("key", "status", "question", "answer_index", "answer", "elements__role"))
    assert after == before

    # Into a dataset whose image of the same name has other content: the hash check refuses the lines.
    other = DatasetFactory()
    ImageFactory(dataset=other, original_name=a.original_name, seed=999)
    with open(everything / "qa.jsonl", "rb") as stream:
        report = import_qa_jsonl(stream, dataset=other, file_name="all", run_by="t")
    assert report.imported == 0 and report.errors[0].reason.startswith(f"sha256: image {a.original_name!r} has")


def test_export_parquet(images, tmp_path):
    import pyarrow.parquet as pq

    a, _ = images
    _run(
        [
            _line(a, status="accepted"),
            _line(
                a,
                question="Open?",
                type="open",
                category="reasoning",
                options=None,
                answer="Because.",
                status="accepted",
            ),
        ],
        a.dataset,
    )
    out = tmp_path / "pq"
    call_command("export_dataset", "--dataset", a.dataset.slug, "--format", "qa-parquet", "--out", str(out))
    table = pq.read_table(out / "qa.parquet").to_pylist()
    assert [(r["type"], r["answer_index"], r["answer"]) for r in table] == [
        ("multiple_choice", 1, None),
        ("open", None, "Because."),
    ]
    assert table[0]["options"] == ["awe", "fear", "sadness"] and table[0]["author"]["name"] == "gpt-4o"
