"""The trusted review loop end to end, shared by the API test and the browser test.

One image goes through the real importer (``manage.py import_emoverse``), the real pipeline
(``manage.py preannotate``: two annotators and a critic on the fake OpenAI-compatible server,
tiny random-initialised Grounding DINO and SAM loaded from folders), two independent reviews,
adjudication, and the three export formats, whose files :func:`check_exports` reads field by field.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
from django.conf import settings
from django.core.management import call_command
from PIL import Image as PILImage
from pycocotools import mask as mask_utils
from rest_framework.test import APIClient

from annotations.models import Dataset, Image, ImageStatus
from exports.models import ExportSnapshot, ExportStatus
from ml.config import reset_registry
from tests.ml.stage_fakes import api_pipeline_config

WIDTH, HEIGHT = 96, 72
FORMATS = ("emoverse-jsonl", "coco", "parquet")


def pipeline_config(fake_openai, key_env: str, models: dict[str, Path]) -> dict:
    """Two annotators and the critic on the fake server; tiny Grounding DINO and SAM on the CPU."""
    cpu = {"device": "cpu"}
    return api_pipeline_config(
        fake_openai.base_url, key_env, version="trust-v1", timeout=30, gpu_batch_size=4,
        grounder={"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder",
                  "options": {"model_path": str(models["grounder"]), "box_threshold": 0.0, "text_threshold": 0.0, **cpu}},
        segmenter={"backend": "ml.stages.backends.sam_hf.HFSamSegmenter",
                   "options": {"model_path": str(models["segmenter"]), **cpu}},
        des={"backend": "tests.ml.stage_fakes.FakeDes"}, classifier=None,
    )


def import_and_preannotate(tmp_path: Path, config: dict, capture=None) -> Image:
    """Import one image file through ``import_emoverse`` (status new), then run the pipeline on it
    (``preannotate``, Celery eager); the dataset asks two independent reviews of every image.
    ``capture``: ``django_capture_on_commit_callbacks`` inside a test transaction (None when the
    test commits for real, as the browser tests do)."""
    images = tmp_path / "incoming"
    images.mkdir()
    rng = np.random.default_rng(7)
    PILImage.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), "RGB").save(images / "lawn.png")
    jsonl = tmp_path / "incoming.jsonl"
    jsonl.write_text(json.dumps({"image": "lawn.png", "source": "web"}) + "\n")
    call_command("import_emoverse", str(jsonl), "--images-dir", str(images), "--dataset", "trust", "--user", "importer",
                 stdout=io.StringIO())
    image = Image.objects.get(dataset__slug="trust")
    assert image.status == ImageStatus.NEW
    Dataset.objects.filter(slug="trust").update(reviews_per_item=2, overlap_fraction=1.0)
    settings.EMOVERSE_ML = config
    reset_registry()
    try:
        with capture(execute=True) if capture else contextlib.nullcontext():
            out = io.StringIO()
            call_command("preannotate", "--dataset", "trust", stdout=out)
        assert "Queued 1 image(s)" in out.getvalue(), out.getvalue()
    finally:
        reset_registry()
    image.refresh_from_db()
    assert image.status == ImageStatus.IN_REVIEW, image.status
    return image


def grounded_triplet(base: dict) -> dict:
    """The first triplet of the pipeline's answer whose three elements have a box and a mask."""
    for triplet in base["triplets"]:
        if all(triplet.get(role, {}).get("mask") and triplet[role].get("box") for role in ("background", "attribute", "subject")):
            return triplet
    raise AssertionError(f"no fully grounded triplet in {base['triplets']}")


def edited_mask() -> tuple[dict, np.ndarray]:
    """The adjudicator's subject mask: a rectangle in the lower right (RLE and the array)."""
    m = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    m[40:66, 52:90] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")}, m


def decode(size: list[int], counts: str) -> np.ndarray:
    return mask_utils.decode({"size": list(size), "counts": counts.encode("ascii")})


def export_all(admin, dataset_slug: str, capture=None) -> dict[str, ExportSnapshot]:
    """Start the three exports through the API (the worker runs them when the request commits)."""
    client = APIClient()
    client.force_authenticate(admin)
    out = {}
    for export_format in FORMATS:
        with capture(execute=True) if capture else contextlib.nullcontext():
            r = client.post("/api/exports/", {"dataset": dataset_slug, "format": export_format}, format="json")
        assert r.status_code == 201, r.json()
        body = client.get(f"/api/exports/{r.json()['id']}/").json()
        assert body["status"] == ExportStatus.COMPLETE, body
        out[export_format] = ExportSnapshot.objects.get(pk=body["id"])
    return out


def check_exports(snapshots: dict[str, ExportSnapshot], expect: SimpleNamespace) -> None:
    """Each format field by field. ``expect``: ``image_id``, ``key`` (the triplet), ``phrases`` (role →
    the kept phrase), ``rejected`` (role, phrase), ``mask`` (the subject's array), ``label``,
    ``confidence``, ``distribution`` (or None), ``adjudicator`` (username)."""
    root = Path(settings.EXPORT_ROOT)
    rejected_role, rejected_phrase = expect.rejected

    # JSONL: the round-trip format keeps every element, the rejected one with its status.
    lines = [json.loads(x) for x in (root / snapshots["emoverse-jsonl"].path / "data.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["annotator"] == {"kind": "human", "name": expect.adjudicator}
    triplet = next(t for t in line["triplets"] if t["key"] == expect.key)
    assert (triplet[rejected_role]["phrase"], triplet[rejected_role]["status"]) == (rejected_phrase, "rejected")
    for role, phrase in expect.phrases.items():
        assert triplet[role]["phrase"] == phrase and triplet[role]["status"] != "rejected", (role, triplet[role])
    assert np.array_equal(decode(triplet["subject"]["mask"]["size"], triplet["subject"]["mask"]["counts"]), expect.mask)
    assert line["ces"]["label"] == expect.label
    assert abs(line["ces"]["confidence"] - expect.confidence) < 1e-9
    if expect.distribution is not None:
        assert line["ces"]["distribution"] == expect.distribution
    assert snapshots["emoverse-jsonl"].manifest["left_out"]["rejected_elements"] == 0

    # COCO: the rejected element is no instance and no phrase anywhere; the subject's segmentation is the edit.
    coco = json.loads((root / snapshots["coco"].path / "annotations.json").read_text())
    (entry,) = coco["images"]
    assert entry["id"] == expect.image_id and entry["ces_label"] == expect.label
    assert abs(entry["ces_confidence"] - expect.confidence) < 1e-9
    if expect.distribution is not None:
        assert entry["ces_distribution"] == expect.distribution
    instances = [a for a in coco["annotations"] if a["triplet_key"] == expect.key]
    assert {a["role"] for a in instances} == set(expect.phrases)
    assert rejected_phrase not in json.dumps(coco)
    subject = next(a for a in instances if a["role"] == "subject")
    assert subject["phrase"] == expect.phrases["subject"]
    assert np.array_equal(mask_utils.decode({**subject["segmentation"],
                                             "counts": subject["segmentation"]["counts"].encode("ascii")}), expect.mask)
    assert snapshots["coco"].manifest["left_out"]["rejected_elements"] == 1

    # Parquet: the rejected element's column is null; the others carry phrase, status and the mask.
    table = pq.read_table(root / snapshots["parquet"].path / "data.parquet").to_pylist()
    (row,) = table
    assert row["image_id"] == expect.image_id and row["ces_label"] == expect.label
    assert abs(row["ces_confidence"] - expect.confidence) < 1e-9
    if expect.distribution is not None:
        got = row["ces_distribution"]
        assert {k: round(v, 9) for k, v in got.items()} == {k: round(v, 9) for k, v in expect.distribution.items()}
    triplet = next(t for t in row["triplets"] if t["key"] == expect.key)
    assert triplet[rejected_role] is None
    for role, phrase in expect.phrases.items():
        assert triplet[role]["phrase"] == phrase
    assert np.array_equal(decode(triplet["subject"]["mask_size"], triplet["subject"]["mask_counts"]), expect.mask)
    assert snapshots["parquet"].manifest["left_out"]["rejected_elements"] == 1
