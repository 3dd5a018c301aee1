"""The importer's fast paths (issue 16) give what the slow paths give: the same parsed values
and errors (orjson beside ``core.text.parse_json``), the same stored file names and reuse
(direct writes beside the storage API), the same rows (``COPY`` beside
``annotation_bulk_create``), the same time-limit messages (a stage reported by a task)."""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.storage import default_storage

from annotations.image_files import image_prepare
from annotations.image_services import ImageCandidate, image_store_files
from annotations.importers import file_workers
from annotations.importers.copy_write import annotations_write
from annotations.importers.emoverse_parse import load_json
from annotations.importers.file_store import store_image_files, stored_names
from annotations.models import Annotation, Dataset, Element, Image, ImportRun, Triplet
from annotations.services import NewAnnotation, annotation_bulk_create
from annotations.validation import validate_annotation
from core.text import parse_json
from tests.annotations.test_import import Workspace
from tests.factories import annotation_payload, png_bytes

LINES = [
    b'{"image": "a.png", "ces": {"label": "fear", "confidence": 0.0071428571428571435}}',
    b'{"a": 1234567890123456789, "b": -98765432109876543210, "c": 12345678901234567890.5}',
    b'{"a": 1e308, "b": 2e308}', b"[1e400]", b"[-1e400]", b"[NaN]", b"[Infinity]", b"[1, 2,]",
    b'"\\ud800"', b'"\\udc80 tail"', b'"\\ud83d\\ude00"', b'{"k\\u0000": 1}', b'"a\\u0000b"', b'"\\\\u0000"',
    b'"a\tb"', b'"a\x7fb"', b"\xef\xbb\xbf[1]", b"[1]\n", b" {} ", b"{}x", b'{"a": 1, "a": 2}',
    b'"\xff\xfe"', b'"\xed\xa0\x80"', b"[" * 300 + b"]" * 300, b"[" * 2000 + b"]" * 2000, b"1" * 5000,
    b"[0.1, 1e-400, -0.0, 5e-324, 1E+2, 0e0]", b'"\\u00e9\\/"', b"[true, false, null]", b"",
    '{"phrase": "h\u00e9, \u65e5\u672c"}'.encode(), b'{"counts": "V6<<00000000000000000000000000j5", "n": 7}',
    b'{"a":\n -1234567890123456789}', b'{"s": "x,1234567890123456789"}', b'{"source": ["web"]}',
]


def _outcome(load, raw: bytes):
    try:
        value = load(raw)
    except Exception as exc:  # JSONDecodeError, UnicodeDecodeError, RecursionError, TextPolicyError
        return type(exc).__name__, str(exc)
    return "ok", repr(value), repr([type(v) for v in (value.values() if isinstance(value, dict) else [value])])


@pytest.mark.parametrize("raw", LINES, ids=range(len(LINES)))
def test_orjson_reads_a_line_as_parse_json_does_and_refuses_it_in_the_same_words(raw):
    assert _outcome(load_json, raw) == _outcome(parse_json, raw)


def test_a_usual_line_takes_the_fast_way(monkeypatch):
    """Digits in a mask's RLE string, 17-digit fractions: still orjson."""
    import core.text

    monkeypatch.setattr(core.text, "parse_json", lambda raw: pytest.fail("took the slow way"))
    line = {"image": "a.png", "ces": {"label": "fear", "confidence": 0.0071428571428571435},
            "triplets": [{"subject": {"phrase": "boat", "mask": {"size": [24, 32], "counts": "V6<<000000000000000000000j5"}}}]}
    assert load_json(json.dumps(line).encode()) == line


ODD_NAMES = ["a.png", "dir/sub/x y.png", "..\\..\\evil.png", "h\u00e9llo w\u00f6rld.jpeg", "$%^&.png", ".hidden",
             "a.b.c.tar.gz", "x" * 200 + ".png", "", " spaced .png", "\u65e5\u672c\u8a9e.png", "a/..png"]


def _candidate(seed: int = 1) -> ImageCandidate:
    prepared = image_prepare(png_bytes(32, 24, seed=seed))
    return ImageCandidate(sha256=prepared.sha256, width=prepared.width, height=prepared.height, prepared=prepared)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_new_image_files_get_the_names_the_storage_api_gives(name, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    candidate, dataset = _candidate(), Dataset(pk=7, slug="x")
    assert stored_names(7, name, candidate.prepared) == image_store_files(
        dataset=dataset, candidate=candidate, original_name=name).files
    # Written the fast way at those names, then reused: no second copy.
    ours = store_image_files(dataset=dataset, candidate=candidate, original_name=name)
    assert ours.files == stored_names(7, name, candidate.prepared) and ours.prepared is None
    assert default_storage.open(ours.files[0]).read() == candidate.prepared.data
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 2


def test_a_cut_off_file_at_the_name_is_left_alone_and_another_name_taken(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    candidate, dataset = _candidate(), Dataset(pk=3, slug="x")
    file_name, _ = stored_names(3, "a.png", candidate.prepared)
    (tmp_path / file_name).parent.mkdir(parents=True)
    (tmp_path / file_name).write_bytes(candidate.prepared.data[:10])
    stored = store_image_files(dataset=dataset, candidate=candidate, original_name="a.png")
    assert stored.files[0] != file_name and stored.files[0].startswith(file_name.rsplit(".", 1)[0] + "_")
    assert (tmp_path / file_name).read_bytes() == candidate.prepared.data[:10]
    assert (tmp_path / stored.files[0]).read_bytes() == candidate.prepared.data


def _rows(images: list[Image]) -> list:
    out = []
    for a in Annotation.objects.filter(image__in=images).order_by("image__original_name", "version"):
        triplets = [(t.index, sorted((e.role, e.phrase, e.status, e.box, e.box_score, e.mask, e.mask_score)
                                     for e in t.elements.all())) for t in a.triplets.order_by("index")]
        out.append((a.image.original_name, a.version, a.kind, a.author_name, a.is_current, a.decision,
                    a.decision_reason, a.ces_label, a.ces_confidence, a.ces_distribution, a.ces_raw_distribution,
                    bytes(a.des) if a.des is not None else None, a.rationale, a.prompt_version, a.pipeline_version,
                    a.raw_output, a.critic, a.extra, a.import_run_id, a.parent_id, a.author_user_id, triplets))
    return out


@pytest.mark.django_db
def test_copy_writes_the_rows_annotation_bulk_create_writes():
    """On PostgreSQL ``annotations_write`` uses COPY (elsewhere it is ``annotation_bulk_create``):
    the same versions, currents, values, triplets and elements, ids aside."""
    dataset = Dataset.objects.create(slug="copy")
    run = ImportRun.objects.create(dataset=dataset, run_by="t")
    images = {}
    for way in ("copy", "orm"):
        images[way] = [Image.objects.create(dataset=dataset, sha256=f"{way}{i}", original_name=f"{i}.png", width=64,
                                            height=48, file=f"{way}{i}.png") for i in range(2)]

    def items(batch: list[Image], round_: int) -> list[NewAnnotation]:
        data = [validate_annotation(annotation_payload(64, 48, label=label, confidence=0.5 + round_ / 10), 64, 48)
                for label in ("fear", "awe", "sadness")]
        data[1] = validate_annotation({**annotation_payload(64, 48, label="awe"), "des": [0.5] * 1024}, 64, 48)
        return [
            NewAnnotation(image=batch[0], data=data[0], kind="model", author_name="gpt-4o", extra={"import_fingerprint": "a"},
                          raw_distribution=data[0].ces.distribution, critic={"reasoning": "ok"}, import_run=run),
            NewAnnotation(image=batch[0], data=data[1], kind="model", author_name="gpt-4o", prompt_version="v2",
                          decision="approved", decision_reason="why", import_run=run),
            NewAnnotation(image=batch[1], data=data[2], kind="human", author_name="alice", raw_output="raw"),
        ]

    for round_ in range(2):  # the second round demotes the first
        annotations_write(items=items(images["copy"], round_))
        annotation_bulk_create(items=items(images["orm"], round_))
    assert _rows(images["copy"]) == _rows(images["orm"]) and len(_rows(images["copy"])) == 6
    copied = Annotation.objects.filter(image__in=images["copy"])
    assert copied.filter(is_current=True).count() == 2 and all(a.created_at for a in copied)
    assert Triplet.objects.filter(annotation__in=copied).count() == 6
    assert Element.objects.filter(triplet__annotation__in=copied).count() == 18


@pytest.mark.django_db
def test_images_write_stores_the_rows_bulk_create_stores():
    """On PostgreSQL ``images_write`` uses COPY: the same columns as ``bulk_create``, the
    instances given their ids and times; a second copy of a content is refused as by the insert."""
    from django.db import IntegrityError, transaction

    from annotations.importers.copy_write import images_write

    dataset = Dataset.objects.create(slug="images")
    made = {way: [Image(dataset=dataset, sha256=f"{way}{i}", original_name=f"{i}.png", width=32, height=24 + i,
                        source="emoset", file=f"images/{way}{i}.png", thumbnail=f"thumbs/{way}{i}.jpg") for i in range(2)]
            for way in ("copy", "orm")}
    images_write(images=made["copy"])
    Image.objects.bulk_create(made["orm"])
    skip = {"id", "sha256", "file", "thumbnail", "audit_draw", "created_at", "updated_at"}

    def rows(way: str) -> list[tuple]:
        names = [f.attname for f in Image._meta.concrete_fields if f.attname not in skip]
        return list(Image.objects.filter(sha256__startswith=way).order_by("sha256").values_list(*names))

    assert rows("copy") == rows("orm") and len(rows("copy")) == 2
    for image in made["copy"]:
        stored = Image.objects.get(pk=image.pk)
        assert (stored.sha256, stored.file.name, stored.audit_draw, stored.created_at) == (
            image.sha256, image.file.name, image.audit_draw, image.created_at) and stored.updated_at
        assert not image._state.adding
    with pytest.raises(IntegrityError), transaction.atomic():
        images_write(images=[Image(dataset=dataset, sha256="copy0", original_name="x.png", width=1, height=1, file="x")])


def _stall_after_storing() -> None:
    file_workers.progress("stored")
    time.sleep(30)


file_workers.register("test_stall_after_storing", _stall_after_storing)


@pytest.mark.django_db
def test_a_task_that_stalls_after_a_stage_it_reported_is_timed_out_in_that_stage(settings):
    with file_workers.FilePool(workers=1, timeout_s=0.3) as pool:
        (ok, error), = pool.run("test_stall_after_storing", [()])
        assert pool.killed == 1
    assert not ok and str(error) == "not stored within 0.3 s (EMOVERSE_IMAGE_READ_TIMEOUT_S); is its mount stalled?"


@pytest.mark.django_db(transaction=True)
def test_a_batch_prepared_while_the_one_before_writes_imports_as_in_sequence(tmp_path, settings):
    """On PostgreSQL the next batch is prepared while the current one writes: a content that
    the batch before stores meanwhile is found at the write, created once, with one copy of its files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    ws = Workspace(tmp_path)
    a, b = ws.add_png("a.png", seed=1), ws.add_png("b.png", seed=2)
    (ws.images / "b-copy.png").write_bytes((ws.images / b).read_bytes())
    lines = [ws.line(a), ws.line(a, annotator="gemini"), ws.line("b-copy.png"), "not json", ws.line(b, annotator="x"),
             ws.line(a), ws.line("missing.png")]
    report = ws.run(lines, batch_size=2)
    assert (report.imported, report.duplicates, report.failed, report.images_created) == (4, 1, 2, 2)
    assert [e.line for e in report.errors] == [4, 7]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["a.png", "b-copy.png"]
    assert Annotation.objects.count() == 4
    assert len([p for p in (tmp_path / "media").rglob("*") if p.is_file()]) == 4  # a file and a thumbnail each


@pytest.mark.django_db(transaction=True)
def test_an_import_that_grows_the_tables_refreshes_their_statistics(tmp_path, settings, monkeypatch, on_postgres):
    """Autovacuum off or behind: the import analyzes the tables it grows (after its first lines,
    then each time it doubled them), so the batches' lookups keep using their indexes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotations.importers import emoverse_jsonl

    monkeypatch.setattr(emoverse_jsonl, "ANALYZE_FIRST_AT", 2)
    settings.MEDIA_ROOT = tmp_path / "media"
    ws = Workspace(tmp_path)
    lines = [ws.line(ws.add_png(f"{i}.png", seed=i)) for i in range(5)]
    with CaptureQueriesContext(connection) as queries:
        report = ws.run(lines, batch_size=1)
    assert report.imported == 5
    analyzed = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("ANALYZE")]
    assert len(analyzed) == 2 and '"annotations_element"' in analyzed[0]  # after 2 lines, after 4


@pytest.mark.django_db
def test_images_a_batch_creates_are_routed_from_its_answers_as_from_the_database(tmp_path, settings, monkeypatch):
    """The queue fields of the images a batch creates come from the answers the batch wrote
    (no read back): exactly what scoring them again from the database gives, with several
    authors, a second version of one author, a person, the merged answer and a critic."""
    from annotations.importers import routing

    settings.MEDIA_ROOT = tmp_path / "media"
    ws = Workspace(tmp_path)
    a, b, c, d = (ws.add_png(f"{n}.png", seed=i) for i, n in enumerate("abcd"))
    ws.run([ws.line(d, label="awe", confidence=0.6)])  # d exists before the batch: read from the database
    read: list[set[int]] = []
    real = routing._current_answers
    monkeypatch.setattr(routing, "_current_answers", lambda ids: read.append(set(ids)) or real(ids))
    wrong = {"label_verdict": "ok", "elements": [{"triplet_index": 0, "role": "subject", "verdict": "wrong"}]}
    report = ws.run([
        ws.line(a, label="awe", confidence=0.7), ws.line(a, annotator="gemini", label="fear", confidence=0.55,
                                                         subject_phrase="a tiny dinghy"),
        ws.line(a, label="sadness", confidence=0.9),  # gpt-4o again: its newest is current
        ws.line(b, annotator="alice", kind="human", label="awe"), {**ws.line(b, annotator="pipeline"), "critic": wrong},
        ws.line(c, confidence=0.4, with_mask=False), {"image": c},
        ws.line(d, annotator="gemini", label="fear", confidence=0.8),
    ])
    assert (report.imported, report.duplicates, report.failed) == (7, 1, 0)
    created = set(Image.objects.exclude(original_name=d).values_list("pk", flat=True))
    assert read and not any(ids & created for ids in read)

    def queue() -> dict:
        return {i.original_name: (i.status, i.label, i.confidence, i.agreement, i.priority) for i in Image.objects.all()}

    imported = queue()
    assert imported[a][3] is not None and imported[b][4] is not None
    routing.images_refresh_agreement(image_ids=list(Image.objects.values_list("pk", flat=True)))
    assert queue() == imported


def test_a_worker_checks_the_bytes_it_found_without_reading_the_file_again(tmp_path, settings):
    """``find_file`` keeps the bytes it hashed for ``prepare_file`` in the same worker: the
    file is read once (here it is gone before the check, which still gets its pixels)."""
    (tmp_path / "a.png").write_bytes(png_bytes(32, 24, seed=3))
    found = file_workers.find_file(tmp_path, "a.png")
    (tmp_path / "a.png").unlink()
    assert file_workers.prepare_file(found).sha256 == found.sha256
