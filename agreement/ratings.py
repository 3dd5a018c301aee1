"""The ratings section of the agreement report: agreement of people's scores per assessment scale.

Per scale (``core.reliability`` and ``agreement.statistics``):

- **ICC** on the largest complete block of images x raters (:func:`core.reliability.complete_block`;
  the ICC needs every rater to score every image): two-way random, absolute agreement,
  single and average measures (McGraw & Wong ICC(A,1), ICC(A,k) = Shrout & Fleiss ICC(2,1),
  ICC(2,k)), and the consistency forms ICC(C,1), ICC(C,k), with F-based 95 % intervals.
- **Krippendorff's alpha** at interval and ordinal level over every rating (missing values
  allowed), with a bootstrap interval over images.
- **Rater vs mean**: each person's Pearson and Spearman correlation with the mean of the
  other people on the images they share (Fisher-z intervals).
- **Model vs human**: each model's scores against the people's mean score of an image.

Every statistic is a number with its interval or says why it is undefined, as in
:mod:`agreement.report`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from agreement.results import ReportOptions, alpha_result, undefined
from agreement.selectors import RatingRow, ScaleInfo
from core.errors import UndefinedStatisticError
from core.reliability import CorrelationResult, Icc, complete_block, correlate, icc, rater_vs_mean
from qa.models import RaterKind

ICC_SHOWN = ("ICC2", "ICC2k", "ICC3", "ICC3k")  # absolute agreement first, then consistency


def _num(value: float | None) -> float | None:
    """A JSON number: ``None`` for NaN (undefined) and infinity (an F ratio over zero error)."""
    return None if value is None or not math.isfinite(value) else float(value)


def icc_dict(form: Icc) -> dict[str, Any]:
    out = {
        "form": form.form,
        "name": form.name,
        "model": form.model,
        "type": form.type,
        "unit": form.unit,
        "value": _num(form.value),
        "low": _num(form.low),
        "high": _num(form.high),
        "f": _num(form.f),
        "df1": form.df1,
        "df2": form.df2,
        "p_value": _num(form.p_value),
        "confidence": form.confidence,
    }
    if not form.defined:
        out["undefined"] = "zero denominator: no variance between images or raters in the block"
    return out


def correlation_dict(result: CorrelationResult | None, reason: str = "", n: int = 0) -> dict[str, Any]:
    if result is None:
        return undefined(reason, n)
    out = {
        "value": result.r,
        "low": result.low,
        "high": result.high,
        "n": result.n,
        "p_value": _num(result.p_value),
        "confidence": result.confidence,
    }
    if result.low is None:
        out["note"] = "no interval with three pairs"
    return out


def _correlations(x: np.ndarray, y: np.ndarray, confidence: float) -> dict[str, dict[str, Any]]:
    n = int((~np.isnan(x) & ~np.isnan(y)).sum())
    out = {}
    for method in ("pearson", "spearman"):
        try:
            out[method] = correlation_dict(correlate(x, y, method=method, confidence=confidence))
        except UndefinedStatisticError as exc:
            out[method] = correlation_dict(None, str(exc), n)
    return out


class ScaleArrays:
    """One scale's ratings: ``human`` ``(raters, images)`` with NaN where a person gave none,
    ``models`` model name → ``(images,)``."""

    def __init__(self, rows: list[RatingRow]):
        self.image_ids = sorted({r.image_id for r in rows})
        column = {image_id: j for j, image_id in enumerate(self.image_ids)}
        self.raters = sorted({r.rater for r in rows if r.kind == RaterKind.HUMAN})
        row_of = {name: i for i, name in enumerate(self.raters)}
        self.human = np.full((len(self.raters), len(self.image_ids)), np.nan)
        self.models: dict[str, np.ndarray] = {}
        for r in rows:
            if r.kind == RaterKind.HUMAN:
                self.human[row_of[r.rater], column[r.image_id]] = r.value
            else:
                self.models.setdefault(r.rater, np.full(len(self.image_ids), np.nan))[column[r.image_id]] = r.value

    def human_mean(self) -> np.ndarray:
        """``(images,)`` the people's mean score, NaN where nobody rated."""
        counts = (~np.isnan(self.human)).sum(axis=0)
        totals = np.nansum(self.human, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def icc_section(arrays: ScaleArrays, confidence: float) -> dict[str, Any]:
    rows, cols = complete_block(arrays.human.T)
    if len(cols) == 0:
        return {**undefined("no two images were rated by the same two or more people", 0), "raters": []}
    block = arrays.human.T[np.ix_(rows, cols)]
    raters = [arrays.raters[c] for c in cols]
    try:
        table = icc(block, confidence=confidence)
    except UndefinedStatisticError as exc:
        return {**undefined(str(exc), len(rows)), "raters": raters}
    return {
        "n": table.n_targets,
        "raters": raters,
        "images_left_out": len(arrays.image_ids) - table.n_targets,
        "mean_squares": {"images": table.ms_targets, "raters": table.ms_raters, "error": table.ms_error},
        "forms": {form: icc_dict(table[form]) for form in ICC_SHOWN},
    }


def scale_section(scale: ScaleInfo, rows: list[RatingRow], options: ReportOptions) -> dict[str, Any]:
    arrays = ScaleArrays(rows)
    confidence = options.confidence
    human_mean = arrays.human_mean()
    rater_rows = []
    for r in rater_vs_mean(arrays.human, confidence=confidence):
        entry = {"rater": arrays.raters[r.rater], "n": r.n}
        entry["pearson"] = correlation_dict(r.pearson, r.reason, r.n)
        entry["spearman"] = correlation_dict(r.spearman, r.reason, r.n)
        rater_rows.append(entry)
    models = [
        {"model": name, **_correlations(values, human_mean, confidence)}
        for name, values in sorted(arrays.models.items())
    ]
    return {
        "scale": scale.key,
        "name": scale.name,
        "range": [scale.min_value, scale.max_value],
        "counts": {
            "images": len(arrays.image_ids),
            "rated_by_people": int((~np.isnan(human_mean)).sum()),
            "human_ratings": int((~np.isnan(arrays.human)).sum()),
            "raters": arrays.raters,
            "models": sorted(arrays.models),
        },
        "icc": icc_section(arrays, confidence),
        "krippendorff_alpha_interval": alpha_result(arrays.human, "interval", options),
        "krippendorff_alpha_ordinal": alpha_result(arrays.human, "ordinal", options),
        "rater_vs_mean": rater_rows,
        "model_vs_human": models,
    }


def ratings_section(scales: list[ScaleInfo], rows: Iterable[RatingRow], options: ReportOptions) -> dict[str, Any]:
    """One entry per scale that has ratings in the selection, in the scales' order."""
    by_scale: dict[int, list[RatingRow]] = {}
    for row in rows:
        by_scale.setdefault(row.scale_id, []).append(row)
    return {"scales": [scale_section(s, by_scale[s.id], options) for s in scales if s.id in by_scale]}
