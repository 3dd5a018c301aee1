"""The API and the importer accept exactly the same text and numbers (``core.text``),
so a dataset exported from the app always imports again: the same odd values go
through a review submit and an import line; each bad one is refused by both, with the
same words, and each good one is stored by both, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from annotations.importers import import_emoverse_jsonl
from annotations.models import Annotation, AnnotationKind, Dataset, Element
from annotations.selectors import annotation_to_dict, image_final_annotation
from tests.factories import annotation_payload, png_bytes
from tests.review.conftest import human_answer
from tests.security.conftest import send

pytestmark = pytest.mark.django_db

W, H = 64, 48  # the size of the factories' images
PLACEHOLDER = '"__value__"'

# (where, the JSON text of the value)
BAD = [
    ("phrase", json.dumps("small\x00boat")),
    ("rationale", json.dumps("calm\x00sea")),
    ("phrase", json.dumps("\ud83d boat")),
    ("rationale", json.dumps("calm sea \udc80")),
    ("phrase", json.dumps("\u200b\u200b")),
    ("phrase", json.dumps("\ufeff \u2060")),
    ("phrase", json.dumps("\u200c\u200d\u200e")),
    ("confidence", "NaN"),
    ("confidence", "Infinity"),
    ("confidence", "-Infinity"),
    ("confidence", "1e400"),
]
GOOD = [
    "\U0001f30a stormy sea",  # outside the BMP: a surrogate pair in JSON
    "بحر هائج",  # right to left
    "e\u0301te\u0301 calm",  # combining accents
    "\U0001d530\U0001d522\U0001d51e",  # mathematical letters
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",  # a joined emoji sequence
    "boat\u200b",  # a zero-width space beside visible text
    "\u202bembedded\u202c",
]


def placed(line: dict, where: str) -> str:
    """``line`` (an annotation object or a JSONL line) as JSON with the placeholder at ``where``."""
    if where == "phrase":
        line["triplets"][0]["subject"]["phrase"] = "__value__"
    elif where == "rationale":
        line["rationale"] = "__value__"
    else:
        line["ces"]["confidence"] = "__value__"
    return json.dumps(line)


def api_submit(client, item: dict, annotation_json: str):
    body = json.dumps({"expected_version": item["version"], "decision": "approved", "annotation": "__annotation__"})
    return send(client, "post", f"/api/review/leases/{item['lease']['id']}/submit/",
                body.replace('"__annotation__"', annotation_json))


def import_line(tmp_path: Path, line_json: str):
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    (images / "sea.png").write_bytes(png_bytes(W, H, seed=99))
    path = tmp_path / "import.jsonl"
    path.write_text(line_json + "\n", encoding="utf-8")
    with open(path, "rb") as stream:
        return import_emoverse_jsonl(stream=stream, images_dir=images, dataset_slug="imported", run_by="tester",
                                     file_name=str(path))


def jsonl_line() -> dict:
    return {"image": "sea.png", "annotator": {"kind": "model", "name": "gpt-4o"}, **annotation_payload(W, H)}


@pytest.mark.parametrize("where, value", BAD)
def test_a_bad_value_is_refused_by_the_api_and_by_the_importer_in_the_same_words(as_reviewer, item, tmp_path, where, value):
    response = api_submit(as_reviewer, item, placed(human_answer(item), where).replace(PLACEHOLDER, value))
    assert response.status_code == 400
    report = import_line(tmp_path, placed(jsonl_line(), where).replace(PLACEHOLDER, value))
    assert (report.imported, report.failed) == (0, 1)
    reason = report.errors[0].reason
    # The API names the path inside the body (``annotation.…``) where the policy refuses a
    # value, and inside the annotation where annotation validation does (documented).
    assert response.json()["detail"].endswith(reason), (response.json(), reason)
    assert response.json()["field"].endswith(reason.split(": ")[0])
    assert Annotation.objects.filter(kind=AnnotationKind.HUMAN).count() == 0
    assert not Dataset.objects.filter(slug="imported", images__isnull=False).exists()


@pytest.mark.parametrize("value", GOOD)
def test_a_good_odd_value_is_stored_unchanged_by_the_api_and_by_the_importer(as_reviewer, item, tmp_path, value):
    text = json.dumps(value)
    api_answer = human_answer(item)
    api_answer["rationale"] = value
    response = api_submit(as_reviewer, item, placed(api_answer, "phrase").replace(PLACEHOLDER, text))
    assert response.status_code == 201, response.json()
    line = jsonl_line()
    line["rationale"] = value
    report = import_line(tmp_path, placed(line, "phrase").replace(PLACEHOLDER, text))
    assert report.ok and report.imported == 1
    reviewed = Annotation.objects.get(pk=response.json()["annotation_id"])
    imported = Annotation.objects.get(image__dataset__slug="imported")
    for annotation in (reviewed, imported):
        assert annotation.rationale == value
        phrase = Element.objects.get(triplet__annotation=annotation, triplet__index=0, role="subject").phrase
        assert phrase == " ".join(value.split())


def test_odd_text_submitted_through_the_api_survives_export_and_import(as_reviewer, item, tmp_path):
    answer = human_answer(item)
    answer["rationale"] = " / ".join(GOOD)
    for i, triplet in enumerate(answer["triplets"]):
        for j, role in enumerate(("background", "attribute", "subject")):
            if role in triplet:
                triplet[role]["phrase"] = GOOD[(3 * i + j) % len(GOOD)]
    response = api_submit(as_reviewer, item, json.dumps(answer))
    assert response.status_code == 201 and response.json()["image_status"] == "approved"

    out = tmp_path / "export"
    call_command("export_dataset", "--dataset", "demo", "--format", "emoverse-jsonl", "--out", str(out), "--images", "copy")
    call_command("import_emoverse", str(out / "data.jsonl"), "--images-dir", str(out / "images"), "--dataset", "copy",
                 "--approved")

    source = Dataset.objects.get(slug="demo").images.get()
    copy = Dataset.objects.get(slug="copy").images.get()
    before, after = image_final_annotation(image=source), image_final_annotation(image=copy)
    assert before.rationale == after.rationale == " / ".join(GOOD)
    assert annotation_to_dict(after) | {"annotator": None} == annotation_to_dict(before) | {"annotator": None}
