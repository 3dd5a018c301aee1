"""COCO export: pycocotools loads it, masks decode to the stored masks pixel for pixel, COCOeval accepts it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotations.models import Element
from annotations.selectors import image_final_annotation
from core.vocabulary import EMOTIONS, ROLES
from exports import runs, selectors, services
from tests.exports.export_scenes import build_scene, fast_passwords  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene():
    return build_scene()


def export_coco(dataset, categories: str | None = None) -> tuple[COCO, Path]:
    options = {"categories": categories} if categories else {}
    snapshot = services.export_create(dataset=dataset, export_format="coco", options=options)
    snapshot = runs.export_run(snapshot_id=snapshot.pk)
    path = selectors.final_dir(snapshot) / "annotations.json"
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path)), path


def stored_elements(scene) -> dict[tuple[int, str, str], Element]:
    out = {}
    for image in (scene.imported, scene.reviewed, scene.adjudicated):
        final = image_final_annotation(image=image)
        for triplet in final.triplets.all():
            for element in triplet.elements.all():
                out[(image.pk, str(triplet.key), element.role)] = element
    return out


def test_pycocotools_loads_it_and_every_mask_decodes_to_the_stored_mask(scene):
    coco, _ = export_coco(scene.dataset)
    assert sorted(coco.getImgIds()) == sorted([scene.imported.pk, scene.reviewed.pk, scene.adjudicated.pk])
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(EMOTIONS)
    elements = stored_elements(scene)
    masks = 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        element = elements[(ann["image_id"], ann["triplet_key"], ann["role"])]
        assert ann["iscrowd"] == 0 and ann["phrase"] == element.phrase
        image = coco.imgs[ann["image_id"]]
        decoded = coco.annToMask(ann)
        assert decoded.shape == (image["height"], image["width"])
        if element.mask_counts is None:
            assert ann["mask_from_box"] is True
            assert ann["area"] == pytest.approx((element.x1 - element.x0) * (element.y1 - element.y0))
            continue
        masks += 1
        stored = mask_utils.decode({"size": [element.mask_height, element.mask_width], "counts": element.mask_counts.encode()})
        assert np.array_equal(decoded, stored)
        assert ann["area"] == float(stored.sum()) and ann["mask_from_box"] is False
        assert ann["bbox"] == [element.x0, element.y0, element.x1 - element.x0, element.y1 - element.y0]
    assert masks == 2  # the imported and the reviewed subject; the adjudicated version has no mask


def test_emotion_categories_follow_the_final_label_and_extra_keys_are_kept(scene):
    coco, _ = export_coco(scene.dataset)
    adjudicated = coco.imgs[scene.adjudicated.pk]
    assert adjudicated["ces_label"] == "sadness" and adjudicated["annotator"] == {"kind": "human", "name": "carol"}
    assert set(adjudicated["ces_distribution"]) == set(EMOTIONS)
    sadness = coco.getCatIds(catNms=["sadness"])
    assert {a["image_id"] for a in coco.loadAnns(coco.getAnnIds(catIds=sadness))} == {scene.adjudicated.pk}
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[scene.reviewed.pk]))[0]
    assert {"phrase", "role", "triplet_index", "triplet_key", "element_status", "ces_label"} <= set(ann)
    # The attribute has no box and no mask: kept on the image entry, not as an annotation.
    other = coco.imgs[scene.reviewed.pk]["other_elements"]
    assert [(e["role"], e["phrase"], e["reason"]) for e in other] == [("attribute", "dark, churning", "no box or mask")]
    assert coco.imgs[scene.reviewed.pk]["triplets"][0]["subject"] == "a lighthouse"


def test_role_categories(scene):
    coco, _ = export_coco(scene.dataset, "role")
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(ROLES)
    subject = coco.getCatIds(catNms=["subject"])[0]
    assert {a["role"] for a in coco.loadAnns(coco.getAnnIds(catIds=[subject]))} == {"subject"}
    assert coco.getAnnIds(catIds=coco.getCatIds(catNms=["attribute"])) == []  # attributes are never grounded here


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cocoeval_scores_the_ground_truth_against_itself_as_perfect(scene, iou_type):
    """iscrowd 0 with RLE is evaluated as ordinary instances (iscrowd 1 would be ignored regions)."""
    coco, _ = export_coco(scene.dataset, "role")
    results = [{**ann, "score": 1.0} for ann in coco.loadAnns(coco.getAnnIds())]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco, coco.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
