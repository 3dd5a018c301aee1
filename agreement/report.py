"""The agreement report of a dataset: database rows → numpy arrays → statistics → a JSON dict.

The dict is the one source for the page, the CSV and JSON downloads, the API and
``manage.py agreement --json``. Every statistic is either a number or says why it is
undefined: ``{"value": None, "undefined": "<reason>"}`` — never a made-up value.

A statistic with an interval reads ``{"value", "low", "high", "n", "undefined_resamples"}``:
``n`` is the number of items it is computed on, ``low``/``high`` the percentile
bootstrap interval (items resampled with a fixed seed).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from django.utils import timezone

from agreement import elements as element_stats
from agreement import selectors
from agreement.calibration import report_calibration_section
from agreement.qa_report import qa_section
from agreement.ratings import ratings_section
from agreement.results import (
    ReportOptions,
    alpha_result,
    fleiss_result,
    fleiss_subset,
    kappa_result,
    pairable,
    undefined,
)
from agreement.selectors import LabelRow, ReportFilters
from agreement.statistics import (
    confusion_matrix,
    counts_table,
    fleiss_kappa_per_category,
    specific_agreement,
)
from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Dataset
from core.vocabulary import EMOTIONS
from ml.calibration_fits import model_distribution_rows
from review.reference import reference_labels

REFERENCE = "reference"  # the human reference label (review.reference)


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


# -------------------------------------------------------------------- label arrays


@dataclass
class LabelArrays:
    """Labels of the filtered images, one column per image.

    ``human``/``confidence``: ``(reviewers, images)`` float, category codes / confidences,
    NaN where the reviewer gave none. ``models``: model → ``(images,)`` codes.
    ``reference``: ``(images,)`` the human reference label (``review.reference``: the
    adjudication, else the approved reviews' unanimous label, else the reviews' strict
    majority), NaN where there is none. ``categories``: the dataset's taxonomy's labels;
    a code is an index into them.
    """

    image_ids: np.ndarray
    reviewers: list[str]
    human: np.ndarray
    confidence: np.ndarray
    models: dict[str, np.ndarray]
    reference: np.ndarray
    reviewers_of: dict[int, set[str]]
    categories: tuple[str, ...] = EMOTIONS

    @property
    def codes(self) -> np.ndarray:
        return np.arange(len(self.categories))

    @classmethod
    def from_rows(cls, rows: Iterable[LabelRow], categories: tuple[str, ...] = EMOTIONS) -> LabelArrays:
        rows = list(rows)
        image_ids = np.array(sorted({r.image_id for r in rows}), dtype=np.int64)
        column = {int(i): j for j, i in enumerate(image_ids)}
        human_rows = [r for r in rows if r.kind == AnnotationKind.HUMAN]
        reviewers = sorted({r.author for r in human_rows})
        row_of = {name: i for i, name in enumerate(reviewers)}
        code = {e: i for i, e in enumerate(categories)}
        human = np.full((len(reviewers), len(image_ids)), np.nan)
        confidence = np.full_like(human, np.nan)
        reviewers_of: dict[int, set[str]] = {}
        for r in human_rows:
            reviewers_of.setdefault(r.image_id, set()).add(r.author)
            if r.label is not None:
                human[row_of[r.author], column[r.image_id]] = code[r.label]
            if r.confidence is not None:
                confidence[row_of[r.author], column[r.image_id]] = r.confidence
        models: dict[str, np.ndarray] = {}
        for r in rows:
            if r.kind == AnnotationKind.MODEL and r.label is not None:
                if r.author not in models:
                    models[r.author] = np.full(len(image_ids), np.nan)
                models[r.author][column[r.image_id]] = code[r.label]
        reference = np.full(len(image_ids), np.nan)
        for image_id, label in reference_labels(rows).items():
            reference[column[image_id]] = code[label]
        return cls(image_ids, reviewers, human, confidence, models, reference, reviewers_of, tuple(categories))

    def reference_codes(self) -> dict[int, int]:
        """Image id → reference label code, for the images that have one."""
        has = ~np.isnan(self.reference)
        return dict(zip(self.image_ids[has].tolist(), self.reference[has].astype(np.int64).tolist()))

    def no_reference_yet(self) -> int:
        """Reviewed images without a reference label (their reviews disagree, no adjudication yet)."""
        column = {int(i): j for j, i in enumerate(self.image_ids)}
        return sum(1 for image_id in self.reviewers_of if np.isnan(self.reference[column[image_id]]))

    def annotator(self, name: str) -> np.ndarray:
        """Codes of one annotator: ``reviewer:NAME``, ``model:NAME`` or ``reference``."""
        kind, _, who = name.partition(":")
        if name == REFERENCE:
            return self.reference
        if kind == "reviewer" and who in self.reviewers:
            return self.human[self.reviewers.index(who)]
        if kind == "model" and who in self.models:
            return self.models[who]
        raise KeyError(name)

    def annotator_ids(self) -> list[str]:
        return [f"reviewer:{r}" for r in self.reviewers] + [f"model:{m}" for m in sorted(self.models)] + [REFERENCE]


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    both = ~np.isnan(a) & ~np.isnan(b)
    return a[both].astype(np.int64), b[both].astype(np.int64)


# ---------------------------------------------------------------------- statistics


def _per_class(data: np.ndarray, categories: tuple[str, ...] = EMOTIONS) -> list[dict[str, Any]]:
    codes = np.arange(len(categories))
    multi = data[:, pairable(data)]
    specific = np.full(len(codes), np.nan)
    if multi.size and multi.shape[1]:
        specific = specific_agreement(counts_table(multi, categories=codes)[0])
    m, table = fleiss_subset(data, codes)
    fleiss = fleiss_kappa_per_category(table) if m else np.full(len(codes), np.nan)
    out = []
    for label, s, k in zip(categories, _finite_or_none(specific), _finite_or_none(fleiss)):
        out.append({
            "label": label, "specific_agreement": s, "fleiss_kappa": k,
            "undefined_specific": None if s is not None else "no reviewer used it on an item reviewed twice or more",
            "undefined_fleiss": None if k is not None else "unused or universal among the Fleiss items",
        })
    return out


def _pairs(arrays: LabelArrays, options: ReportOptions) -> list[dict[str, Any]]:
    out = []
    for i, j in itertools.combinations(range(len(arrays.reviewers)), 2):
        a, b = _paired(arrays.human[i], arrays.human[j])
        if len(a) == 0:
            continue
        pair = {"a": arrays.reviewers[i], "b": arrays.reviewers[j], "n": len(a)}
        if len(a) < options.min_shared:
            pair["kappa"] = undefined(f"{len(a)} shared items; at least {options.min_shared} needed", len(a))
        else:
            pair["kappa"] = kappa_result(a, b, arrays.codes, options)
            pair["observed_agreement"] = float(np.mean(a == b))
        out.append(pair)
    return out


def confusion(arrays: LabelArrays, a: str, b: str) -> dict[str, Any]:
    """Confusion matrix between two annotators (rows: ``a``, columns: ``b``) on shared items."""
    la, lb = _paired(arrays.annotator(a), arrays.annotator(b))
    return {"a": a, "b": b, "n": len(la), "matrix": confusion_matrix(la, lb, arrays.codes).tolist()}


def _confusions(arrays: LabelArrays) -> list[dict[str, Any]]:
    """Every pair of annotators (reviewers, models, reference) that shares at least one item."""
    out = []
    for a, b in itertools.combinations(arrays.annotator_ids(), 2):
        matrix = confusion(arrays, a, b)
        if matrix["n"]:
            out.append(matrix)
    return out


def _models(arrays: LabelArrays, options: ReportOptions) -> list[dict[str, Any]]:
    """Each model as an annotator: against the human reference (kappa, accuracy, confusion), and
    added to the reviewers as one more rater of the items they labelled twice or more (alpha)."""
    out = []
    for name in sorted(arrays.models):
        labels = arrays.models[name]
        model, reference = _paired(labels, arrays.reference)
        row: dict[str, Any] = {"model": name, "merged": name == PIPELINE_AUTHOR, "n": len(model)}
        if len(model) == 0:
            row["kappa"] = undefined("no item has both this model's label and a human reference label", 0)
            row["accuracy"] = None
        else:
            row["kappa"] = kappa_result(reference, model, arrays.codes, options)
            row["accuracy"] = float(np.mean(model == reference))
        # On the items two or more reviewers labelled, so it compares with the reviewers' own alpha.
        multi = pairable(arrays.human)
        row["alpha_with_reviewers"] = alpha_result(np.vstack([arrays.human, labels[None, :]])[:, multi], "nominal", options)
        row["confusion"] = confusion(arrays, REFERENCE, f"model:{name}")
        out.append(row)
    return out


def label_section(arrays: LabelArrays, options: ReportOptions) -> dict[str, Any]:
    return {
        "categories": list(arrays.categories),
        "krippendorff_alpha": alpha_result(arrays.human, "nominal", options),
        "fleiss_kappa": fleiss_result(arrays.human, arrays.codes, options),
        "pairwise_cohen_kappa": _pairs(arrays, options),
        "per_class": _per_class(arrays.human, arrays.categories),
        "confusion": _confusions(arrays),
    }


# -------------------------------------------------------------------------- report


def agreement_report(*, dataset: Dataset, filters: ReportFilters | None = None,
                     options: ReportOptions | None = None) -> dict[str, Any]:
    """The full report of ``dataset`` under ``filters`` (see the module docstring)."""
    filters = filters or ReportFilters()
    options = options or ReportOptions.from_settings()
    taxonomy = dataset.get_taxonomy()
    arrays = LabelArrays.from_rows(selectors.label_rows(dataset=dataset, filters=filters), taxonomy.labels)
    multi = int(pairable(arrays.human).sum())
    human_rows = list(selectors.human_element_rows(dataset=dataset, filters=filters))
    units = element_stats.group(human_rows)
    model_elements = element_stats.model_element_sections(
        selectors.model_element_rows(dataset=dataset, filters=filters),
        element_stats.triplets_by_author(human_rows, kept_only=True), arrays.reviewers_of, options)
    models = _models(arrays, options)
    for row in models:
        row["elements"] = model_elements.get(row["model"]) or {
            "decisions": 0, "kept_by_reviewers": None,
            "undefined": "this model has no element on an item reviewed twice or more"}
    return {
        "dataset": {"slug": dataset.slug, "name": dataset.name, "taxonomy": taxonomy.name},
        "filters": filters.as_dict(),
        "options": asdict(options),
        "generated_at": timezone.now().isoformat(),
        "counts": {
            "images": len(arrays.image_ids),
            "reviewed_images": len(arrays.reviewers_of),
            "multi_reviewed_images": multi,
            "reference_labels": int((~np.isnan(arrays.reference)).sum()),
            "no_reference_yet": arrays.no_reference_yet(),
            "reviewers": arrays.reviewers,
            "models": sorted(arrays.models),
        },
        "labels": label_section(arrays, options),
        "confidence": {"krippendorff_alpha_interval": alpha_result(arrays.confidence, "interval", options)},
        "elements": element_stats.element_section(units, arrays.reviewers_of, options),
        "models": models,
        "calibration": report_calibration_section(
            reference=arrays.reference_codes(),
            rows=model_distribution_rows(images=selectors.dataset_images(dataset=dataset, filters=filters)),
            labels=taxonomy.labels),
        "ratings": ratings_section(selectors.rating_scales(dataset=dataset),
                                   selectors.rating_rows(dataset=dataset, filters=filters), options),
        "qa": qa_section_of(dataset=dataset, filters=filters, options=options),
    }


def qa_section_of(*, dataset: Dataset, filters: ReportFilters, options: ReportOptions) -> dict[str, Any]:
    categories, dimensions = selectors.qa_axis_names(dataset=dataset)
    return qa_section(selectors.qa_reviewed_rows(dataset=dataset, filters=filters),
                      status_counts=selectors.qa_pair_counts(dataset=dataset, filters=filters),
                      categories=categories, dimensions=dimensions, confidence=options.confidence)
