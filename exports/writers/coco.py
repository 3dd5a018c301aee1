"""COCO instance segmentation (``annotations.json``), loadable by ``pycocotools.coco.COCO``.

Categories (option ``categories``, docs/export.md):

- ``emotion`` (default): one category per Mikels emotion; every grounded element
  of an image is an instance of the image's CES label.
- ``role``: one category per B-A-S role (background, attribute, subject).

Elements a reviewer or adjudicator rejected are left out (option
``include_rejected``: kept and marked by ``element_status``), and so is a
triplet with no element left. Every other element with a box or a mask is one
annotation: ``bbox`` ``[x, y, w, h]``
(the stored box, else the mask's bounding box), ``area`` (mask pixels, else box
area), ``segmentation`` as compressed COCO RLE ``{"size": [h, w], "counts": str}``
exactly as stored, ``iscrowd`` 0: each mask is one object instance, and
pycocotools decodes RLE whatever ``iscrowd`` says (``annToRLE`` looks at the
segmentation's type), while ``iscrowd`` 1 would make COCOeval treat the region
as "ignore". A box-only element gets its box as a one-polygon segmentation and
``"mask_from_box": true`` (COCOeval needs a segmentation on every instance).
Extra keys carry the phrase, role,
triplet index and key, element status and scores; the image entries carry the
CES fields, rationale, annotator, all triplet phrases and the elements that are
not annotations (no box and no mask, or no CES label in ``emotion`` mode).

The file is streamed: images and annotations go to two part files while the
export runs and are joined into one JSON object at the end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.masks import mask_areas, mask_bbox
from core.vocabulary import MIKELS, ROLES, Taxonomy
from exports.writers.items import (
    ExportElement,
    ExportItem,
    HashedFile,
    WriterResult,
    dumps,
    export_annotator,
    grounded,
    kept_elements,
)

FILE_NAME = "annotations.json"
_IMAGES_PART = ".images.part"
_ANNOTATIONS_PART = ".annotations.part"


def categories_for(mode: str, taxonomy: Taxonomy = MIKELS) -> list[dict[str, Any]]:
    """The COCO categories: the taxonomy's labels in its order (supercategory: the label's
    polarity, ``neutral`` for one in neither group, ``emotion`` for a taxonomy without
    polarity), or the B-A-S roles."""
    if mode == "emotion":
        return [
            {"id": i, "name": e,
             "supercategory": (taxonomy.polarity(e) or "neutral") if taxonomy.has_polarity else "emotion"}
            for i, e in enumerate(taxonomy.labels, start=1)
        ]
    return [{"id": i, "name": r, "supercategory": "bas"} for i, r in enumerate(ROLES, start=1)]


def element_geometry(element: ExportElement, mask_area: int | None = None) -> tuple[list[float], float, dict | list, bool]:
    """``(bbox [x, y, w, h], area, segmentation, mask_from_box)`` of a grounded element.

    ``segmentation`` is the stored RLE, or for a box-only element the box as one polygon.
    ``mask_area``: the mask's pixel count when the caller computed it (a chunk's masks at once).
    """
    if element.mask_counts is None:
        x0, y0, x1, y1 = element.x0, element.y0, element.x1, element.y1
        return [x0, y0, x1 - x0, y1 - y0], float((x1 - x0) * (y1 - y0)), [[x0, y0, x1, y0, x1, y1, x0, y1]], True
    segmentation = {"size": [element.mask_height, element.mask_width], "counts": element.mask_counts}
    if element.x0 is not None:
        bbox = [element.x0, element.y0, element.x1 - element.x0, element.y1 - element.y0]
    else:
        bbox = mask_bbox(segmentation)
    if mask_area is None:
        mask_area = mask_areas([segmentation])[0]
    return bbox, float(mask_area), segmentation, False


def _optional(out: dict[str, Any], **values: Any) -> dict[str, Any]:
    out.update({k: v for k, v in values.items() if v is not None})
    return out


class CocoWriter:
    OPTIONS: Mapping[str, tuple[Any, ...]] = {"categories": ("emotion", "role"), "include_rejected": (False, True)}
    WRITES_DES = False  # the fast path does not read the vectors (exports.chunks)

    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        self._folder = folder
        self._mode = options.get("categories", "emotion")
        self.include_rejected = bool(options.get("include_rejected", False))
        self._taxonomy = context.get("taxonomy", MIKELS)
        self._category_ids = {c["name"]: c["id"] for c in categories_for(self._mode, self._taxonomy)}
        self._context = context
        self._images = open(folder / _IMAGES_PART, "wb")  # noqa: SIM115 - closed in close/abort
        self._annotations = open(folder / _ANNOTATIONS_PART, "wb")  # noqa: SIM115
        self._n_images = 0
        self._n_annotations = 0
        self._n_masks = 0

    def encode(self, items: list[ExportItem]) -> tuple[int, bytes, list[bytes], int]:
        """A chunk as ``(images, their JSON joined by commas, each annotation's JSON without its "id", masks)``.

        Needs no state of earlier chunks (a worker process may encode it); :meth:`append`
        numbers the annotations.
        """
        encoded = [self._encode(item) for item in items]
        masks = [element.mask for _, found in encoded for element, *_ in found if element.mask_counts is not None]
        areas = iter(mask_areas(masks))  # one pycocotools call for the chunk's masks
        images, annotations = [], []
        for entry, found in encoded:
            images.append(dumps(entry))
            for element, image_id, category_id, described, label in found:
                area = next(areas) if element.mask_counts is not None else None
                annotations.append(dumps(self._annotation(image_id, category_id, element, described, label, area)))
        return len(images), b",".join(images), annotations, len(masks)

    def append(self, encoded: tuple[int, bytes, list[bytes], int]) -> None:
        """Add an encoded chunk to the part files (chunks in export order), numbering its annotations from 1."""
        n_images, images, annotations, masks = encoded
        if n_images:
            self._images.write((b"," if self._n_images else b"") + images)
        if annotations:
            first = self._n_annotations + 1
            numbered = b",".join([b'{"id":%d,%b' % (first + i, a[1:]) for i, a in enumerate(annotations)])
            self._annotations.write((b"," if self._n_annotations else b"") + numbered)
        self._n_images += n_images
        self._n_annotations += len(annotations)
        self._n_masks += masks

    def write(self, items: list[ExportItem]) -> None:
        self.append(self.encode(items))

    def _encode(self, item: ExportItem) -> tuple[dict, list[tuple[ExportElement, int, int, dict, str | None]]]:
        """The image entry and, per COCO annotation, ``(element, image id, category id, described, label)``."""
        image, final = item.image, item.annotation
        entry: dict[str, Any] = {"id": image.id, "file_name": item.file_name, "width": image.width, "height": image.height}
        _optional(entry, coco_url=item.url)
        entry.update(source=image.source, sha256=item.sha256, original_sha256=image.sha256, ces_label=final.ces_label,
                     ces_confidence=final.ces_confidence, ces_distribution=final.ces_distribution,
                     rationale=final.rationale, annotator=export_annotator(final), triplets=[], other_elements=[])
        annotations = []
        for triplet in final.triplets:
            elements = kept_elements(triplet, include_rejected=self.include_rejected)
            if not elements:
                continue
            phrases: dict[str, Any] = {"index": triplet.index, "key": triplet.key}
            for element in elements:
                phrases[element.role] = element.phrase
                category = final.ces_label if self._mode == "emotion" else element.role
                described = {"triplet_index": triplet.index, "triplet_key": triplet.key, "role": element.role,
                             "phrase": element.phrase, "element_status": element.status}
                if not grounded(element) or category is None:
                    described["reason"] = "no box or mask" if not grounded(element) else "the image has no CES label"
                    entry["other_elements"].append(described)
                    continue
                annotations.append((element, image.id, self._category_ids[category], described, final.ces_label))
            entry["triplets"].append(phrases)
        return entry, annotations

    @staticmethod
    def _annotation(image_id: int, category_id: int, element: ExportElement, described: dict, label: str | None,
                    area: int | None) -> dict:
        """An annotation without its ``id`` (given by :meth:`append`, as the first key)."""
        bbox, area, segmentation, from_box = element_geometry(element, area)
        out: dict[str, Any] = {"image_id": image_id, "category_id": category_id, "bbox": bbox,
                               "area": area, "iscrowd": 0, "segmentation": segmentation, "mask_from_box": from_box}
        out.update(described)
        return _optional(out, box_score=element.box_score, mask_score=element.mask_score, ces_label=label)

    def close(self) -> WriterResult:
        self._images.close()
        self._annotations.close()
        header = {
            "info": {
                "description": f"EmoVerse export of dataset {self._context.get('dataset', '')}",
                "version": str(self._context.get("version", "")),
                "year": datetime.now(UTC).year,
                "date_created": datetime.now(UTC).isoformat(),
                "categories_by": self._mode,
            },
            "licenses": [],
            "categories": categories_for(self._mode, self._taxonomy),
        }
        out = HashedFile(self._folder / FILE_NAME)
        try:
            out.write(json.dumps(header, ensure_ascii=False)[:-1].encode())
            for key, part in (("images", _IMAGES_PART), ("annotations", _ANNOTATIONS_PART)):
                out.write(f',"{key}":['.encode())
                with open(self._folder / part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1024 * 1024)
                out.write(b"]")
            out.write(b"}")
        finally:
            out.close()
        for part in (_IMAGES_PART, _ANNOTATIONS_PART):
            (self._folder / part).unlink()
        return WriterResult(files=[FILE_NAME], counts={"coco_images": self._n_images, "coco_annotations": self._n_annotations,
                                                       "coco_masks": self._n_masks},
                            sha256={FILE_NAME: out.hexdigest()})

    def abort(self) -> None:
        self._images.close()
        self._annotations.close()
