"""The EmoVerse JSONL import service and the ``import_emoverse`` command."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from django.db import IntegrityError
from PIL import Image as PILImage

from annotations.importers import import_emoverse_jsonl
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Decision,
    Image,
    ImageStatus,
    ImportRun,
)
from core.vocabulary import DES_DIM
from tests.annotations.test_images import png_with_header_size
from tests.factories import (
    annotation_payload,
    distribution_for,
    png_bytes,
    rect_mask_rle,
)

pytestmark = pytest.mark.django_db

W, H = 64, 48


class Workspace:
    """An images folder with distinct PNGs and helpers to write and import JSONL."""

    def __init__(self, root: Path):
        self.root = root
        self.images = root / "images"
        self.images.mkdir()
        self.jsonl = root / "import.jsonl"

    def add_png(self, name: str, seed: int, width: int = W, height: int = H) -> str:
        path = self.images / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(width, height, seed=seed))
        return name

    def line(self, name: str, *, annotator: str | None = "gpt-4o", kind: str = "model", **payload_kwargs) -> dict:
        line = {"image": name, "source": "emoset", **annotation_payload(W, H, **payload_kwargs)}
        if annotator is not None:
            line["annotator"] = {"kind": kind, "name": annotator, "prompt_version": "annotate-v1"}
        return line

    def write(self, lines: list) -> Path:
        with open(self.jsonl, "w", encoding="utf-8") as out:
            out.writelines((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
        return self.jsonl

    def run(self, lines: list | None = None, *, dataset: str = "imported", **kwargs):
        if lines is not None:
            self.write(lines)
        with open(self.jsonl, "rb") as stream:
            return import_emoverse_jsonl(
                stream=stream, images_dir=self.images, dataset_slug=dataset, run_by=kwargs.pop("run_by", "tester"),
                file_name=str(self.jsonl), **kwargs,
            )


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


def test_good_file_imports_images_and_model_annotations(ws, settings):
    lines = [ws.line(ws.add_png(f"sub/dir/{i:04d}.png", seed=i)) for i in range(3)]
    report = ws.run(lines)
    assert (report.imported, report.duplicates, report.failed) == (3, 0, 0) and report.ok
    dataset = Dataset.objects.get(slug="imported")  # created by the import
    assert dataset.images.count() == 3
    image = dataset.images.get(original_name="sub/dir/0001.png")
    assert (image.width, image.height, image.source, image.status) == (W, H, "emoset", ImageStatus.IN_REVIEW)
    assert image.thumbnail.name and (settings.MEDIA_ROOT / image.thumbnail.name).exists()
    annotation = image.annotations.get()
    assert (annotation.kind, annotation.author_name, annotation.prompt_version) == (AnnotationKind.MODEL, "gpt-4o", "annotate-v1")
    assert annotation.import_run == report.run and annotation.decision == Decision.NONE
    subject = annotation.triplets.get().elements.get(role="subject")
    assert subject.box == [16.0, 12.0, 32.0, 24.0] and subject.mask["size"] == [H, W]
    run = ImportRun.objects.get()
    assert (run.imported, run.duplicates, run.failed, run.run_by) == (3, 0, 0, "tester") and run.finished_at


def test_a_model_answer_keeps_its_distribution_as_the_raw_one_for_recalibration(ws):
    """A model's imported distribution is its own output (this app never scaled it):
    stored as the raw distribution temperatures are fitted on. The merged pipeline answer
    and people's labels get none."""
    names = [ws.add_png(f"{i}.png", seed=60 + i) for i in range(3)]
    report = ws.run([ws.line(names[0], label="fear"), ws.line(names[1], annotator="pipeline", label="fear"),
                     ws.line(names[2], annotator="alice", kind="human", label="fear")])
    assert report.ok
    by_author = {a.author_name: a for a in Annotation.objects.all()}
    assert by_author["gpt-4o"].ces_raw_distribution == by_author["gpt-4o"].ces_distribution
    assert by_author["gpt-4o"].ces_distribution["fear"] > 0.5
    assert by_author["pipeline"].ces_raw_distribution is None and by_author["alice"].ces_raw_distribution is None


def _bad_line_cases(ws: Workspace) -> dict:
    """id -> (line as dict or raw string, expected reason). Bad lines use image ``bad.png`` when they need one."""
    ws.add_png("bad.png", seed=99)
    base = lambda **changes: {**ws.line("bad.png"), **changes}
    mask_wrong_size = ws.line("bad.png")
    mask_wrong_size["triplets"][0]["subject"]["mask"] = rect_mask_rle(W + 1, H, (1, 1, 5, 5))
    box_outside = ws.line("bad.png")
    box_outside["triplets"][0]["subject"]["box"] = [10, 10, W + 5, 20]
    (ws.images / "text.jpg").write_text("this is a text file, not a JPEG\n")
    jpeg = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (ws.images / "truncated.jpg").write_bytes(jpeg.getvalue()[:3000])
    (ws.images / "bomb.png").write_bytes(png_with_header_size(100_000, 100_000))
    outside = ws.root / "outside.png"
    outside.write_bytes(png_bytes(W, H, seed=98))
    os.symlink(outside, ws.images / "link.png")
    return {
        "malformed-json": ('{"image": "bad.png", "ces": ', "malformed JSON"),
        "not-an-object": ("[1, 2, 3]", "not a JSON object (got list)"),
        "missing-image-key": ({"source": "web", "rationale": "x"}, 'missing "image"'),
        "unknown-key": (base(trplets=[]), "unknown key(s) 'trplets'"),
        "unknown-emotion": (base(ces={"label": "joy", "confidence": 0.5}), "ces.label: unknown emotion 'joy'"),
        "distribution-sum": (
            base(ces={"label": "fear", "distribution": {**distribution_for("fear"), "fear": 0.9}}),
            "not 1 (±0.001)",
        ),
        "box-outside": (box_outside, "lies outside the 64x48 image"),
        "mask-size": (mask_wrong_size, "differs from the image size [48, 64]"),
        "des-length": (base(des=[0.0] * (DES_DIM - 1)), f"has {DES_DIM - 1} values, expected {DES_DIM}"),
        "unknown-source": (base(source="instagram"), "unknown source 'instagram'"),
        "source-a-list": (base(source=["web"]), "unknown source ['web']"),
        "missing-annotator": ({k: v for k, v in ws.line("bad.png").items() if k != "annotator"}, "annotator: required"),
        "bad-critic": (base(critic={"elements": [{"triplet_index": 3, "role": "subject", "verdict": "ok"}]}), "triplet_index"),
        "missing-file": (ws.line("nowhere/0001.jpg"), "not found"),
        "text-file-named-jpg": (ws.line("text.jpg"), "not an image"),
        "truncated-jpeg": (ws.line("truncated.jpg"), "truncated"),
        "decompression-bomb": (ws.line("bomb.png"), "decompression bomb"),
        "dotdot-path": (ws.line("../outside.png"), "escapes --images-dir ('..')"),
        "absolute-path": (ws.line(str(outside)), "absolute path"),
        "symlink-outside": (ws.line("link.png"), "through a symbolic link"),
        "width-mismatch": (base(width=W + 1), "the stored image is 64x48"),
        "invalid-utf8": (b'{"image": "bad.png", "rationale": "\xff\xfe"}', "not valid UTF-8"),
        "triplet-key-not-uuid": (with_value(ws, ("triplets", 0, "key"), "not-a-uuid"), "triplets[0].key: must be a UUID"),
        "huge-int-box": (with_value(ws, ("triplets", 0, "subject", "box", 2), 10**400), "triplets[0].subject.box: must be"),
        "huge-int-box-score": (with_value(ws, ("triplets", 0, "subject", "box_score"), 10**400),
                               "triplets[0].subject.box_score: must be a number in [0, 1]"),
        "huge-int-confidence": (with_value(ws, ("ces", "confidence"), 10**400), "ces.confidence: must be a number"),
        "huge-int-distribution": (with_value(ws, ("ces", "distribution", "fear"), -(10**400)),
                                  "ces.distribution: fear must be a probability"),
        "huge-int-des": (base(des=[10**400] + [0.0] * (DES_DIM - 1)), "des: values must be finite numbers"),
        "int-of-5000-digits": ('{"image": "bad.png", "rationale": ' + "1" * 5000 + "}", "malformed JSON: "),
        "lone-surrogate-image": (ws.line("\udc80.png"), "image: text contains an unpaired surrogate (\\udc80)"),
        "lone-surrogate-high-image": (ws.line("\ud800.png"), "image: text contains an unpaired surrogate (\\ud800)"),
        "lone-surrogate-phrase": (with_value(ws, ("triplets", 0, "subject", "phrase"), "boat \ud800"),
                                  "triplets[0].subject.phrase: text contains an unpaired surrogate (\\ud800)"),
        "annotator-kind-a-list": (base(annotator={"kind": [], "name": "x"}), "annotator.kind: must be 'model' or 'human'"),
        "nul-in-rationale": (base(rationale="calm\x00sea"), "rationale: text contains a NUL character"),
        "nul-in-critic": (base(critic={"reasoning": "\x00"}), "critic.reasoning: text contains a NUL character"),
        "nan-in-critic": (base(critic={"score": float("nan")}), "critic.score: number is not finite"),
        "1e400-in-critic": ('{"image": "bad.png", "annotator": {"kind": "model", "name": "m"}, "critic": {"score": 1e400}}',
                            "critic.score: number is not finite (NaN, Infinity, or too large for a double)"),
        "element-status-a-list": (with_value(ws, ("triplets", 0, "subject", "status"), ["accepted"]),
                                  "triplets[0].subject.status: unknown status"),
    }


def with_value(ws: Workspace, path: tuple, value) -> dict:
    """A good line for ``bad.png`` with the value at ``path`` (keys and indexes) replaced."""
    line = ws.line("bad.png")
    target = line
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return line


CASE_IDS = [
    "malformed-json", "not-an-object", "missing-image-key", "unknown-key", "unknown-emotion", "distribution-sum",
    "box-outside", "mask-size", "des-length", "unknown-source", "source-a-list", "missing-annotator", "bad-critic", "missing-file",
    "text-file-named-jpg", "truncated-jpeg", "decompression-bomb", "dotdot-path", "absolute-path", "symlink-outside",
    "width-mismatch", "invalid-utf8", "triplet-key-not-uuid", "huge-int-box", "huge-int-box-score", "huge-int-confidence",
    "huge-int-distribution", "huge-int-des", "int-of-5000-digits", "lone-surrogate-image", "lone-surrogate-high-image",
    "lone-surrogate-phrase", "annotator-kind-a-list", "element-status-a-list", "nul-in-rationale", "nul-in-critic",
    "nan-in-critic", "1e400-in-critic",
]


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_line_is_reported_with_its_number_and_the_good_lines_go_in(ws, settings, case):
    bad, reason = _bad_line_cases(ws)[case]
    good_before, good_after = ws.add_png("a.png", seed=1), ws.add_png("b.png", seed=2)
    ws.write([ws.line(good_before)])
    with open(ws.jsonl, "ab") as out:
        out.write((bad if isinstance(bad, bytes) else (bad if isinstance(bad, str) else json.dumps(bad)).encode()) + b"\n")
        out.write(json.dumps(ws.line(good_after)).encode() + b"\n")
    report = ws.run()
    assert (report.imported, report.failed) == (2, 1)
    assert report.errors[0].line == 2
    assert reason in report.errors[0].reason
    # Nothing of the bad line was written: only the two good images and their files.
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["a.png", "b.png"]
    assert Annotation.objects.count() == 2
    assert len(list((settings.MEDIA_ROOT / "images").rglob("*.png"))) == 2
    assert ImportRun.objects.get().errors == [{"line": 2, "reason": report.errors[0].reason}]


def test_line_longer_than_the_limit_is_skipped_without_reading_it_whole(ws):
    huge = ws.line(ws.add_png("huge.png", seed=3))
    huge["des"] = [0.123456789] * DES_DIM  # ~13 KB of numbers
    good = ws.line(ws.add_png("good.png", seed=4))
    report = ws.run([huge, good], max_line_bytes=4096)
    assert (report.imported, report.failed) == (1, 1)
    assert report.errors[0].line == 1 and "longer than the limit of 4,096 bytes" in report.errors[0].reason
    assert Image.objects.get().original_name == "good.png"


def test_rerunning_the_same_import_creates_nothing_new(ws):
    lines = [ws.line(ws.add_png(f"{i}.png", seed=i), annotator=name) for i in range(3) for name in ("gpt-4o", "gemini-2.5-pro")]
    lines.append({"image": ws.add_png("only-image.png", seed=50)})
    first = ws.run(lines)
    assert (first.imported, first.duplicates, first.images_created, first.annotations_created) == (7, 0, 4, 6)
    counts = (Image.objects.count(), Annotation.objects.count())
    second = ws.run()
    assert (second.imported, second.duplicates, second.failed) == (0, 7, 0)
    assert (Image.objects.count(), Annotation.objects.count()) == counts
    assert ImportRun.objects.get(pk=second.run.pk).duplicates == 7


def test_same_image_under_another_path_is_deduplicated_by_content(ws):
    name = ws.add_png("a.png", seed=1)
    (ws.images / "copy-of-a.png").write_bytes((ws.images / name).read_bytes())
    report = ws.run([{"image": "a.png"}, {"image": "copy-of-a.png"}])
    assert (report.imported, report.duplicates) == (1, 1)
    assert Image.objects.get().original_name == "a.png"


def test_two_model_annotators_on_one_image_both_go_in_and_set_agreement_and_priority(ws):
    agree, disagree = ws.add_png("agree.png", seed=1), ws.add_png("disagree.png", seed=2)
    report = ws.run([
        ws.line(agree, annotator="gpt-4o", label="awe", confidence=0.7),
        ws.line(agree, annotator="gemini-2.5-pro", label="awe", confidence=0.7),
        ws.line(disagree, annotator="gpt-4o", label="awe", confidence=0.7),
        ws.line(disagree, annotator="gemini-2.5-pro", label="fear", confidence=0.7),
    ])
    assert (report.imported, report.failed) == (4, 0)
    agreeing, disagreeing = Image.objects.get(original_name=agree), Image.objects.get(original_name=disagree)
    assert sorted(agreeing.annotations.values_list("author_name", flat=True)) == ["gemini-2.5-pro", "gpt-4o"]
    assert agreeing.annotations.filter(is_current=True).count() == 2
    assert agreeing.agreement == pytest.approx(1.0)
    assert agreeing.priority == pytest.approx((1.0 + 0.7) / 2)
    assert disagreeing.agreement < agreeing.agreement
    assert disagreeing.priority < agreeing.priority  # the disagreement is reviewed first


def test_priority_follows_confidence_low_first_with_one_annotator(ws):
    low, high = ws.add_png("low.png", seed=1), ws.add_png("high.png", seed=2)
    ws.run([ws.line(low, confidence=0.3), ws.line(high, confidence=0.9)])
    images = {i.original_name: i for i in Image.objects.all()}
    assert images[low].priority == pytest.approx(0.3) and images[high].priority == pytest.approx(0.9)
    assert images[low].agreement is None and images[low].label == "fear"


def test_pipeline_answer_sets_label_and_confidence(ws):
    name = ws.add_png("a.png", seed=1)
    ws.run([ws.line(name, annotator="gpt-4o", label="awe", confidence=0.6),
            ws.line(name, annotator="pipeline", label="fear", confidence=0.8)])
    image = Image.objects.get()
    assert (image.label, image.confidence) == ("fear", pytest.approx(0.8))
    assert image.agreement is None  # the merged answer is not an annotator


def test_an_imported_critic_calling_an_element_wrong_moves_the_item_up_the_queue(ws):
    calm, doubted = ws.add_png("calm.png", seed=1), ws.add_png("doubted.png", seed=2)
    wrong = {"label_verdict": "ok", "elements": [{"triplet_index": 0, "role": "subject", "verdict": "wrong"}]}
    ws.run([{**ws.line(calm, annotator="pipeline", confidence=0.8), "critic": {"label_verdict": "ok", "elements": []}},
            {**ws.line(doubted, annotator="pipeline", confidence=0.8), "critic": wrong}])
    images = {i.original_name: i for i in Image.objects.all()}
    assert images[calm].priority == pytest.approx(0.8)
    assert images[doubted].priority == pytest.approx(0.4)


def test_changed_line_from_the_same_annotator_makes_a_new_version(ws):
    name = ws.add_png("a.png", seed=1)
    ws.run([ws.line(name, label="fear")])
    report = ws.run([ws.line(name, label="sadness")])
    assert (report.imported, report.duplicates) == (1, 0)
    versions = list(Annotation.objects.order_by("version").values_list("version", "ces_label", "is_current"))
    assert versions == [(1, "fear", False), (2, "sadness", True)]


def test_approved_import_records_final_annotations_and_provenance(ws):
    names = [ws.add_png(f"{i}.png", seed=i) for i in range(2)]
    lines = [ws.line(names[0], annotator="emoverse-release", kind="human"), ws.line(names[1], annotator=None)]
    report = ws.run(lines, approved=True, run_by="alice")
    assert (report.imported, report.failed) == (2, 0)
    run = ImportRun.objects.get()
    assert run.approved and run.run_by == "alice"
    for image in Image.objects.all():
        assert image.status == ImageStatus.APPROVED and image.label == "fear"
        annotation = image.annotations.get()
        assert annotation.kind == AnnotationKind.IMPORT and annotation.decision == Decision.APPROVED
        assert annotation.import_run == run and "alice" in annotation.decision_reason
    named = Annotation.objects.get(image__original_name=names[0])
    assert named.author_name == "emoverse-release"
    assert named.extra["annotator"] == {"kind": "human", "name": "emoverse-release", "prompt_version": "annotate-v1"}
    assert Annotation.objects.get(image__original_name=names[1]).author_name == "import"
    again = ws.run(approved=True, run_by="alice")
    assert (again.imported, again.duplicates) == (0, 2)


def test_model_import_never_reopens_a_reviewed_image(ws):
    name = ws.add_png("a.png", seed=1)
    ws.run([ws.line(name, annotator="curated")], approved=True)
    ws.run([ws.line(name, annotator="gpt-4o", label="sadness")])
    image = Image.objects.get()
    assert image.status == ImageStatus.APPROVED and image.label == "fear"
    assert image.annotations.filter(kind=AnnotationKind.MODEL, author_name="gpt-4o").exists()


def test_human_annotator_and_des_are_imported(ws):
    line = ws.line(ws.add_png("a.png", seed=1), annotator="alice", kind="human")
    line["des"] = [i / DES_DIM for i in range(DES_DIM)]
    report = ws.run([line])
    assert (report.imported, report.failed) == (1, 0)
    annotation = Annotation.objects.get()
    assert (annotation.kind, annotation.author_name, annotation.author_user) == (AnnotationKind.HUMAN, "alice", None)
    des = np.frombuffer(bytes(annotation.des), dtype="<f4")
    assert des.shape == (DES_DIM,) and des[512] == pytest.approx(0.5)
    image = Image.objects.get()
    assert (image.status, image.label) == (ImageStatus.IN_REVIEW, "fear")


def test_image_only_lines_create_new_images_for_the_pipeline(ws):
    report = ws.run([{"image": ws.add_png("a.png", seed=1)}], source_default="flickr30k")
    assert report.imported == 1 and report.annotations_created == 0
    image = Image.objects.get()
    assert (image.status, image.source) == (ImageStatus.NEW, "flickr30k")
    assert not image.annotations.exists()


def test_exif_rotated_jpeg_boxes_are_in_the_stored_frame(ws):
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored 64x48, displayed (and kept) as 48x64
    buffer = io.BytesIO()
    PILImage.fromarray(np.full((48, 64, 3), 90, dtype=np.uint8)).save(buffer, "JPEG", exif=exif.tobytes())
    (ws.images / "rotated.jpg").write_bytes(buffer.getvalue())
    portrait = {"image": "rotated.jpg", "annotator": {"kind": "model", "name": "gpt-4o"},
                "triplets": [{"subject": {"phrase": "tall tower", "box": [0, 0, 48, 64]}}]}
    landscape = {**portrait, "annotator": {"kind": "model", "name": "gemini-2.5-pro"},
                 "triplets": [{"subject": {"phrase": "tall tower", "box": [0, 0, 64, 48]}}]}
    report = ws.run([portrait, landscape])
    assert (report.imported, report.failed) == (1, 1)
    assert report.errors[0].line == 2 and "outside the 48x64 image" in report.errors[0].reason
    image = Image.objects.get()
    assert (image.width, image.height) == (48, 64)
    assert PILImage.open(image.file.path).size == (48, 64)


def test_cmyk_16bit_and_palette_images_import(ws):
    buffer = io.BytesIO()
    PILImage.fromarray(np.full((H, W, 3), 200, dtype=np.uint8)).convert("CMYK").save(buffer, "JPEG")
    (ws.images / "cmyk.jpg").write_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    PILImage.fromarray(np.arange(W * H, dtype=np.uint16).reshape(H, W) * 20).save(buffer, "PNG")
    (ws.images / "deep.png").write_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)).convert("P").save(
        buffer, "PNG", transparency=0)
    (ws.images / "palette.png").write_bytes(buffer.getvalue())
    report = ws.run([ws.line(name) for name in ("cmyk.jpg", "deep.png", "palette.png")])
    assert (report.imported, report.failed) == (3, 0)
    modes = {i.original_name: PILImage.open(i.file.path).mode for i in Image.objects.all()}
    assert modes == {"cmyk.jpg": "RGB", "deep.png": "L", "palette.png": "P"}


def test_a_database_error_rolls_back_only_its_line(ws, monkeypatch, settings):
    """The batch's bulk write fails; the batch is imported again line by line and only
    the line the database refuses is reported."""
    from annotations.importers import batch_write

    real = batch_write.images_route_imported
    calls = []

    def route_refusing_one_image(*, images, **kwargs):
        calls.append([image.original_name for image in images])
        if any(image.original_name == "1.png" for image in images):
            raise IntegrityError("simulated constraint failure")
        return real(images=images, **kwargs)

    monkeypatch.setattr(batch_write, "images_route_imported", route_refusing_one_image)
    monkeypatch.setattr(batch_write, "image_route_imported", lambda *, image, approved: route_refusing_one_image(
        images=[image], approved=approved))
    names = [ws.add_png(f"{i}.png", seed=i) for i in range(3)]
    report = ws.run([ws.line(n) for n in names])
    assert (report.imported, report.failed, report.duplicates) == (2, 1, 0)
    assert [(e.line, "simulated constraint failure" in e.reason) for e in report.errors] == [(2, True)]
    assert calls == [["0.png", "1.png", "2.png"], ["0.png"], ["1.png"], ["2.png"]]  # the batch, then line by line
    # The image row and annotation written before the failure were rolled back with the line.
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["0.png", "2.png"]
    assert Annotation.objects.count() == 2
    assert report.run.errors == [{"line": 2, "reason": report.errors[0].reason}]
    assert (report.run.imported, report.run.failed) == (2, 1)
    # One file per image: the retry reused the files the rolled-back batch wrote.
    stored = sorted(p.name for p in (settings.MEDIA_ROOT / "images").rglob("*") if p.is_file())
    assert len(stored) == 3 and {i.file.name.rsplit("/", 1)[-1] for i in Image.objects.all()} < set(stored)
    monkeypatch.undo()
    again = ws.run()
    assert (again.imported, again.duplicates, again.failed) == (1, 2, 0)
    assert len([p for p in (settings.MEDIA_ROOT / "images").rglob("*") if p.is_file()]) == 3


def test_lines_of_one_batch_version_the_same_author_in_order(ws):
    """Two lines of one annotator for one image in one batch: two versions, the later current;
    a third line equal to the current one is a duplicate."""
    name = ws.add_png("a.png", seed=3)
    first, second = ws.line(name), ws.line(name)
    second["rationale"] = "A second opinion."
    report = ws.run([first, second, dict(second)])
    assert (report.imported, report.duplicates, report.failed) == (2, 1, 0)
    rows = list(Annotation.objects.order_by("version").values_list("version", "is_current", "rationale"))
    assert [r[:2] for r in rows] == [(1, False), (2, True)] and rows[1][2] == "A second opinion."


def test_an_unexpected_error_is_reported_for_its_line_and_logged(ws, monkeypatch, caplog):
    """A bug the checks do not foresee costs its line only: reported, logged with its traceback."""
    from annotations.importers import line_checks

    real = line_checks.validate_annotation

    def validate_with_a_bug(value, width, height, *args, **kwargs):
        if value.get("rationale") == "boom":
            raise RuntimeError("an unforeseen bug")
        return real(value, width, height, *args, **kwargs)

    monkeypatch.setattr(line_checks, "validate_annotation", validate_with_a_bug)
    names = [ws.add_png(f"{i}.png", seed=i) for i in range(3)]
    lines = [ws.line(n) for n in names]
    lines[1]["rationale"] = "boom"
    with caplog.at_level("ERROR", logger="annotations.importers.emoverse_jsonl"):
        report = ws.run(lines)
    assert (report.imported, report.duplicates, report.failed) == (2, 0, 1)
    assert [e.as_dict() for e in report.errors] == [{"line": 2, "reason": "unexpected error (RuntimeError: an unforeseen bug)"}]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["0.png", "2.png"]
    assert (report.run.imported, report.run.failed) == (2, 1) and report.run.errors == [report.errors[0].as_dict()]
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1 and "line 2" in logged[0].getMessage() and logged[0].exc_info[0] is RuntimeError


def test_an_unexpected_error_in_the_batch_write_falls_back_to_line_by_line(ws, monkeypatch):
    """Not only database errors: whatever breaks the batch's write, the batch is imported again
    line by line, the line at fault is reported once and the counters stay right."""
    from annotations.importers import batch_write

    real = batch_write.annotations_write
    calls = []

    def write_refusing_one_line(*, items, **options):
        calls.append(len(items))
        if any(item.data.rationale == "boom" for item in items):
            raise ValueError("cannot write this one")
        return real(items=items, **options)

    monkeypatch.setattr(batch_write, "annotations_write", write_refusing_one_line)
    names = [ws.add_png(f"{i}.png", seed=i) for i in range(3)]
    lines = [ws.line(n) for n in names]
    lines[2]["rationale"] = "boom"
    report = ws.run(lines + [ws.line(names[0])])  # line 4: a duplicate of line 1
    assert calls == [3, 1, 1, 1]  # the batch, then line by line
    assert (report.imported, report.duplicates, report.failed) == (2, 1, 1)
    assert [e.as_dict() for e in report.errors] == [{"line": 3, "reason": "unexpected error (ValueError: cannot write this one)"}]
    assert (report.run.imported, report.run.duplicates, report.run.failed) == (2, 1, 1)
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["0.png", "1.png"]
    assert Annotation.objects.count() == 2
