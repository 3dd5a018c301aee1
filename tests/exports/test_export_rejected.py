"""Exports say only what people approved: COCO and Parquet leave rejected elements out
(``include_rejected`` keeps them, marked), JSONL keeps every element with its status, the
manifest counts what was left out; reviewer and adjudicator confidence reach every format."""

from __future__ import annotations

import contextlib
import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from pycocotools.coco import COCO

from annotations.models import AnnotationKind, Dataset, Decision, ImageStatus
from annotations.selectors import annotation_to_dict, image_final_annotation
from exports import runs, selectors, services
from exports.models import ExportSnapshot
from review import adjudication, queue
from review import selectors as review_selectors
from review import services as review_services
from tests.exports.export_scenes import fast_passwords  # noqa: F401 - autouse fixture
from tests.factories import (
    DatasetFactory,
    ImageFactory,
    UserFactory,
    annotation_payload,
    distribution_for,
    make_annotation,
)
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db

REJECTED = {"rejected boat", "gone sky", "gone mood", "gone gull"}


def reviewed_with_rejections(dataset):
    """An approved human review: the grounded subject of triplet 1 and all of triplet 2 rejected."""
    image = ImageFactory(dataset=dataset, status=ImageStatus.APPROVED)
    payload = annotation_payload(image.width, image.height, label="fear", confidence=0.8)
    first = payload["triplets"][0]
    first["background"]["status"] = "accepted"
    first["subject"].update(phrase="rejected boat", status="rejected")
    payload["triplets"].append({
        "background": {"phrase": "gone sky", "box": [0, 0, 10, 10], "status": "rejected"},
        "attribute": {"phrase": "gone mood", "status": "rejected"},
        "subject": {"phrase": "gone gull", "box": [5, 5, 20, 20], "status": "rejected"},
    })
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="alice", author_user=UserFactory(username="alice"),
                    decision=Decision.APPROVED, payload=payload)
    return image


def adjudicated_through_the_review_loop(dataset):
    """Two reviews with confidences disagree on the label; the adjudicator picks ann's label without a
    confidence and rejects the subject (the same as ann did)."""
    image = image_in_review(dataset)
    for name, label, confidence in (("ann", "awe", 0.9), ("bob", "sadness", 0.55)):
        reviewer = UserFactory(username=name, roles=["reviewer"])
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        payload = review_selectors.lease_payload(lease)
        answer = human_answer(payload, label=label)
        answer["ces"]["confidence"] = confidence
        review_services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"],
                                      decision="approved", annotation=answer)
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    payload = review_selectors.adjudication_payload(image)
    answer = human_answer(payload, label="awe")
    answer["triplets"][0]["subject"]["status"] = "rejected"
    adjudication.adjudication_submit(image=image, adjudicator=UserFactory(username="ada", roles=["adjudicator"]),
                                        expected_version=payload["version"], annotation=answer)
    image.refresh_from_db()
    assert image.status == ImageStatus.APPROVED
    return image


@pytest.fixture
def scene():
    dataset = DatasetFactory(slug="kept", reviews_per_item=2, overlap_fraction=1.0)
    return dataset, reviewed_with_rejections(dataset), adjudicated_through_the_review_loop(dataset)


def export(dataset, export_format: str, **options) -> ExportSnapshot:
    snapshot = services.export_create(dataset=dataset, export_format=export_format, options=options)
    snapshot = runs.export_run(snapshot_id=snapshot.pk)
    assert snapshot.status == "complete", snapshot.error
    return snapshot


def load_coco(snapshot) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(selectors.final_dir(snapshot) / "annotations.json"))


def coco_phrases(coco: COCO) -> set[str]:
    phrases = {a["phrase"] for a in coco.loadAnns(coco.getAnnIds())}
    for image in coco.imgs.values():
        phrases |= {e["phrase"] for e in image["other_elements"]}
        phrases |= {t[r] for t in image["triplets"] for r in ("background", "attribute", "subject") if r in t}
    return phrases


def parquet_elements(snapshot) -> dict[int, list[dict]]:
    table = pq.read_table(selectors.final_dir(snapshot) / "data.parquet").to_pylist()
    return {row["image_id"]: [t[r] for t in row["triplets"] for r in ("background", "attribute", "subject") if t[r]]
            for row in table}


def test_coco_leaves_rejected_elements_out_and_counts_them(scene):
    dataset, reviewed, adjudicated = scene
    snapshot = export(dataset, "coco")
    coco = load_coco(snapshot)
    assert not coco_phrases(coco) & REJECTED
    assert {a["element_status"] for a in coco.loadAnns(coco.getAnnIds())} <= {"accepted", "edited", "added", "pending"}
    assert len(coco.imgs[reviewed.pk]["triplets"]) == 1  # the triplet with every element rejected is gone
    adjudicated_subjects = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[adjudicated.pk])) if a["role"] == "subject"]
    assert adjudicated_subjects == []
    # 1 + 3 in the review, the subject in the adjudication
    assert snapshot.manifest["left_out"] == {"rejected_elements": 5, "images_without_final_annotation": 0,
                                             "images_auto_accepted_only": 0, "images_outside_filter": 0,
                                             "images_still_in_review": 0}
    assert snapshot.options["include_rejected"] is False and snapshot.manifest["manifest_version"] == 2
    assert snapshot.manifest["counts"]["elements"] == 2 + 2  # background and attribute of each image


def test_coco_keeps_rejected_elements_on_request_marked_with_their_status(scene):
    dataset, reviewed, _ = scene
    snapshot = export(dataset, "coco", include_rejected=True)
    coco = load_coco(snapshot)
    assert REJECTED <= coco_phrases(coco)
    boat = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[reviewed.pk])) if a["phrase"] == "rejected boat"]
    assert [a["element_status"] for a in boat] == ["rejected"]
    assert snapshot.manifest["left_out"]["rejected_elements"] == 0


def test_parquet_leaves_rejected_elements_out_unless_asked(scene):
    dataset, reviewed, adjudicated = scene
    default = export(dataset, "parquet")
    elements = parquet_elements(default)
    assert not {e["phrase"] for es in elements.values() for e in es} & REJECTED
    assert all(e["status"] != "rejected" for es in elements.values() for e in es)
    assert default.manifest["left_out"]["rejected_elements"] == 5
    kept = parquet_elements(export(dataset, "parquet", include_rejected=True))
    assert {e["phrase"]: e["status"] for e in kept[reviewed.pk] if e["phrase"] in REJECTED} == dict.fromkeys(REJECTED, "rejected")


def test_jsonl_keeps_every_element_with_its_status_and_round_trips(scene, tmp_path):
    dataset, reviewed, _ = scene
    snapshot = export(dataset, "emoverse-jsonl")
    assert snapshot.options["include_rejected"] is True and snapshot.manifest["left_out"]["rejected_elements"] == 0
    folder = selectors.final_dir(snapshot)
    lines = {json.loads(line)["image"]: json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()}
    statuses = {e["phrase"]: e.get("status") for t in lines[reviewed.original_name]["triplets"]
                for r in ("background", "attribute", "subject") if (e := t.get(r))}
    assert {p: statuses[p] for p in REJECTED} == dict.fromkeys(REJECTED, "rejected")
    call_command("export_dataset", "--dataset", "kept", "--format", "emoverse-jsonl", "--out", str(tmp_path / "out"),
                 "--images", "copy", stdout=io.StringIO())
    call_command("import_emoverse", str(tmp_path / "out" / "data.jsonl"), "--images-dir", str(tmp_path / "out" / "images"),
                 "--dataset", "copy", "--approved", stdout=io.StringIO())
    copy = {image.original_name: image for image in Dataset.objects.get(slug="copy").images.all()}
    for image in dataset.images.all():
        before, after = image_final_annotation(image=image), image_final_annotation(image=copy[image.original_name])
        assert annotation_to_dict(after) | {"annotator": None} == annotation_to_dict(before) | {"annotator": None}


def test_reviewer_and_adjudicator_confidence_reach_every_format(scene):
    dataset, reviewed, adjudicated = scene
    final = image_final_annotation(image=adjudicated)
    assert (final.kind, final.ces_label, final.ces_confidence) == ("adjudication", "awe", 0.9)  # ann's confidence
    expected = {reviewed.pk: (0.8, distribution_for("fear", 0.8)), adjudicated.pk: (0.9, None)}

    coco = load_coco(export(dataset, "coco"))
    assert {pk: (coco.imgs[pk]["ces_confidence"], coco.imgs[pk]["ces_distribution"]) for pk in expected} == expected
    rows = pq.read_table(selectors.final_dir(export(dataset, "parquet")) / "data.parquet").to_pylist()
    assert {r["image_id"]: (r["ces_confidence"], r["ces_distribution"]) for r in rows} == {
        pk: (c, d and pytest.approx(d)) for pk, (c, d) in expected.items()}
    folder = selectors.final_dir(export(dataset, "emoverse-jsonl"))
    lines = [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()]
    by_name = {line["image"]: line["ces"] for line in lines}
    assert by_name[adjudicated.original_name] == {"label": "awe", "confidence": 0.9, "distribution": None}
    assert by_name[reviewed.original_name]["confidence"] == 0.8


def test_the_command_form_and_api_take_include_rejected(scene, admin_user, api_client, client,
                                                        django_capture_on_commit_callbacks):
    dataset, _, _ = scene
    out = io.StringIO()
    call_command("export_dataset", "--dataset", "kept", "--format", "coco", stdout=out)
    assert "5 rejected element(s) left out (see --include-rejected)" in out.getvalue()
    call_command("export_dataset", "--dataset", "kept", "--format", "parquet", "--include-rejected", stdout=io.StringIO())
    assert ExportSnapshot.objects.latest("id").options["include_rejected"] is True

    client.force_login(admin_user)
    r = client.post("/exports/start/", {"dataset": "kept", "format": "coco", "status": ["approved"], "date_field": "image",
                                        "images": "none", "categories": "emotion", "include_rejected": "on"})
    assert r.status_code == 302, r.content[:500]
    assert ExportSnapshot.objects.latest("id").options == {"images": "none", "categories": "emotion", "include_rejected": True}

    api_client.force_authenticate(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        r = api_client.post("/api/exports/", {"dataset": "kept", "format": "parquet", "options": {"include_rejected": True}},
                            format="json")
    assert r.status_code == 201 and r.json()["options"]["include_rejected"] is True
    assert api_client.get(f"/api/exports/{r.json()['id']}/").json()["manifest"]["left_out"]["rejected_elements"] == 0
    r = api_client.post("/api/exports/", {"dataset": "kept", "format": "emoverse-jsonl",
                                          "options": {"include_rejected": False}}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "include_rejected"
