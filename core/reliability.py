"""Reliability of ratings on a scale: intraclass correlations and correlations with
confidence intervals (no Django; numpy and scipy only).

Conventions
- *Ratings* for an ICC are a ``(targets, raters)`` float array: row ``i`` holds every
  rater's score of target ``i`` (Shrout & Fleiss 1979, Table 4 layout). The ICC needs a
  complete design; rows with a missing value (``NaN``) are dropped and counted, and
  :func:`complete_block` picks the raters and targets of the largest complete block from
  data with gaps.
- *Reliability data* for the rater-vs-mean correlations is ``(raters, units)`` with
  ``NaN`` for a missing value, Krippendorff's layout (as in ``agreement.statistics``,
  whose :func:`krippendorff_alpha` handles missing values directly).

An input with no value for the statistic (too few targets or pairs, no variance) raises
:class:`core.errors.UndefinedStatisticError`; it never reads as 0 or 1.

References
- Shrout, P. E. & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
  reliability. Psychological Bulletin 86(2), 420-428.
- McGraw, K. O. & Wong, S. P. (1996). Forming inferences about some intraclass correlation
  coefficients. Psychological Methods 1(1), 30-46 (and the 1996 correction).
- Bonett, D. G. & Wright, T. A. (2000). Sample size requirements for estimating Pearson,
  Kendall and Spearman correlations. Psychometrika 65(1), 23-28.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from core.errors import UndefinedStatisticError

__all__ = [
    "ICC_FORMS",
    "CorrelationResult",
    "Icc",
    "IccTable",
    "RaterCorrelation",
    "complete_block",
    "correlate",
    "icc",
    "rater_vs_mean",
]

# psych::ICC's names; the McGraw & Wong name and what each measures.
ICC_FORMS = {
    "ICC1": ("ICC(1,1)", "one-way random", "absolute agreement", "single"),
    "ICC2": ("ICC(A,1)", "two-way random", "absolute agreement", "single"),
    "ICC3": ("ICC(C,1)", "two-way mixed", "consistency", "single"),
    "ICC1k": ("ICC(1,k)", "one-way random", "absolute agreement", "average"),
    "ICC2k": ("ICC(A,k)", "two-way random", "absolute agreement", "average"),
    "ICC3k": ("ICC(C,k)", "two-way mixed", "consistency", "average"),
}


@dataclass(frozen=True)
class Icc:
    """One intraclass correlation with its F test and F-based confidence interval.

    ``form`` is psych's name (``ICC2``), ``name`` McGraw & Wong's (``ICC(A,1)``). ``value``,
    ``low`` or ``high`` is ``NaN`` where the form is undefined for the data (e.g. a zero
    denominator); :attr:`defined` says whether the value is a number.
    """

    form: str
    name: str
    model: str
    type: str
    unit: str
    value: float
    low: float
    high: float
    f: float
    df1: float
    df2: float
    p_value: float
    confidence: float

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)


@dataclass(frozen=True)
class IccTable:
    """All six ICC forms of one complete ``(targets, raters)`` table and its mean squares."""

    n_targets: int
    n_raters: int
    n_dropped: int  # targets left out for a missing rating
    ms_targets: float  # between targets (BMS)
    ms_within: float  # within targets (WMS), one-way
    ms_raters: float  # between raters (JMS)
    ms_error: float  # residual (EMS)
    forms: dict[str, Icc]

    def __getitem__(self, form: str) -> Icc:
        return self.forms[form]

    def __iter__(self) -> Iterator[Icc]:
        return iter(self.forms.values())

    @property
    def agreement_single(self) -> Icc:
        """ICC(A,1) = Shrout & Fleiss ICC(2,1): two-way random, absolute agreement, one rater."""
        return self.forms["ICC2"]

    @property
    def agreement_average(self) -> Icc:
        """ICC(A,k) = Shrout & Fleiss ICC(2,k): the mean of the k raters."""
        return self.forms["ICC2k"]


def _as_ratings(ratings: Any) -> np.ndarray:
    try:
        data = np.asarray(ratings, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ratings must be numeric: {exc}") from exc
    if data.ndim != 2:
        raise ValueError(f"ratings must be 2-D (targets, raters), got shape {data.shape}")
    if np.any(np.isinf(data)):
        raise ValueError("ratings hold infinite values; use NaN for missing")
    return data


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else math.nan


def _f_ratio(num: float, den: float) -> float:
    """An F ratio: infinite for a positive numerator over 0, ``NaN`` for 0 / 0."""
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def _single_from_f(f: float, k: int) -> float:
    """``(F - 1) / (F + k - 1)``, 1 in the limit F -> infinity."""
    return 1.0 if math.isinf(f) else (f - 1.0) / (f + k - 1.0)


def _average_from_f(f: float) -> float:
    """``1 - 1 / F``, 1 in the limit F -> infinity."""
    return 1.0 if math.isinf(f) else (1.0 - 1.0 / f if f != 0 else math.nan)


def _spearman_brown(r: float, k: int) -> float:
    return k * r / (1.0 + (k - 1) * r) if not math.isnan(r) else math.nan


def _f_interval(f: float, df1: float, df2: float, q: float) -> tuple[float, float]:
    """McGraw & Wong's bounds on the F ratio: ``F / F_q(df1, df2)`` and ``F * F_q(df2, df1)``."""
    return f / stats.f.ppf(q, df1, df2), f * stats.f.ppf(q, df2, df1)


def icc(ratings: Any, *, confidence: float = 0.95) -> IccTable:
    """The six intraclass correlations of Shrout & Fleiss (1979) with McGraw & Wong (1996)
    confidence intervals, from a ``(targets, raters)`` table.

    ``ICC2`` / ``ICC2k`` (two-way random, absolute agreement; McGraw & Wong ICC(A,1) and
    ICC(A,k)) are the ones to report when raters are a sample of possible raters; ``ICC3`` /
    ``ICC3k`` are the consistency forms (ICC(C,1), ICC(C,k)); ``ICC1`` / ``ICC1k`` the
    one-way forms, for targets rated by different raters. Intervals: the exact F-based ones
    for ICC1 and ICC3, Satterthwaite's approximation for ICC2 (McGraw & Wong, Table 7), the
    average-measure ICC2k bounds by Spearman-Brown from ICC2's (as psych::ICC does).

    Rows with a missing value are dropped (:attr:`IccTable.n_dropped`). Needs two complete
    targets and two raters, and some variance.
    """
    _check_confidence(confidence)
    data = _as_ratings(ratings)
    complete = ~np.isnan(data).any(axis=1)
    x = data[complete]
    n, k = x.shape
    if k < 2:
        raise UndefinedStatisticError(f"ICC needs at least two raters, got {k}")
    if n < 2:
        raise UndefinedStatisticError(f"ICC needs at least two targets rated by every rater, got {n}")
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    if ss_total <= 1e-12 * max(1.0, float(np.abs(x).max()) ** 2) * x.size:
        raise UndefinedStatisticError("ICC is undefined: every rating is the same")
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_error = ss_total - ss_rows - ss_cols
    tiny = 1e-12 * ss_total  # rounding noise of a sum of squares that is 0 in exact arithmetic
    ss_rows, ss_cols, ss_error = (v if v > tiny else 0.0 for v in (ss_rows, ss_cols, ss_error))
    bms, jms = ss_rows / (n - 1), ss_cols / (k - 1)
    wms = (ss_total - ss_rows) / (n * (k - 1))
    ems = ss_error / ((n - 1) * (k - 1))

    q = 1.0 - (1.0 - confidence) / 2.0
    df1, df_within, df_error = n - 1, n * (k - 1), (n - 1) * (k - 1)
    f1, f3 = _f_ratio(bms, wms), _f_ratio(bms, ems)
    p1 = float(stats.f.sf(f1, df1, df_within))
    p3 = float(stats.f.sf(f3, df1, df_error))

    icc1 = _ratio(bms - wms, bms + (k - 1) * wms)
    icc3 = _ratio(bms - ems, bms + (k - 1) * ems)
    icc2 = _ratio(bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n)
    icc1k = _ratio(bms - wms, bms)
    icc3k = _ratio(bms - ems, bms)
    icc2k = _ratio(bms - ems, bms + (jms - ems) / n)

    f1l, f1u = _f_interval(f1, df1, df_within, q)
    f3l, f3u = _f_interval(f3, df1, df_error, q)
    l2, u2 = _agreement_bounds(icc2, n, k, bms, jms, ems, q)

    def make(form: str, value: float, low: float, high: float, f: float, d2: float, p: float) -> Icc:
        name, model, kind, unit = ICC_FORMS[form]
        return Icc(
            form,
            name,
            model,
            kind,
            unit,
            float(value),
            float(low),
            float(high),
            float(f),
            float(df1),
            float(d2),
            p,
            confidence,
        )

    forms = {
        "ICC1": make("ICC1", icc1, _single_from_f(f1l, k), _single_from_f(f1u, k), f1, df_within, p1),
        "ICC2": make("ICC2", icc2, l2, u2, f3, df_error, p3),
        "ICC3": make("ICC3", icc3, _single_from_f(f3l, k), _single_from_f(f3u, k), f3, df_error, p3),
        "ICC1k": make("ICC1k", icc1k, _average_from_f(f1l), _average_from_f(f1u), f1, df_within, p1),
        "ICC2k": make("ICC2k", icc2k, _spearman_brown(l2, k), _spearman_brown(u2, k), f3, df_error, p3),
        "ICC3k": make("ICC3k", icc3k, _average_from_f(f3l), _average_from_f(f3u), f3, df_error, p3),
    }
    return IccTable(n, k, int((~complete).sum()), bms, wms, jms, ems, forms)


def _agreement_bounds(rho: float, n: int, k: int, bms: float, jms: float, ems: float, q: float) -> tuple[float, float]:
    """McGraw & Wong (1996) Table 7, case 2A: bounds of ICC(A,1) with Satterthwaite's df.

    ``a = k rho / (n (1 - rho))``, ``b = 1 + k rho (n - 1) / (n (1 - rho))`` and
    ``v = (a MSC + b MSE)^2 / ((a MSC)^2 / (k - 1) + (b MSE)^2 / ((n - 1)(k - 1)))``.
    """
    if math.isnan(rho):
        return math.nan, math.nan
    if rho >= 1.0:  # no rater and no residual variance: the data agree exactly
        return 1.0, 1.0
    a = k * rho / (n * (1.0 - rho))
    b = 1.0 + k * rho * (n - 1) / (n * (1.0 - rho))
    num = (a * jms + b * ems) ** 2
    den = (a * jms) ** 2 / (k - 1) + (b * ems) ** 2 / ((n - 1) * (k - 1))
    if den <= 0:
        return math.nan, math.nan
    v = num / den
    f_lo, f_hi = stats.f.ppf(q, n - 1, v), stats.f.ppf(q, v, n - 1)
    c = k * jms + (k * n - k - n) * ems
    low = n * (bms - f_lo * ems) / (f_lo * c + n * bms)
    high = n * (f_hi * bms - ems) / (c + n * f_hi * bms)
    return float(low), float(high)


def complete_block(ratings: Any, *, min_raters: int = 2, starts: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a large complete block of a ``(targets, raters)`` table with gaps.

    The ICC needs every rater to rate every target; when raters share the work (K of many
    raters per image), the largest such block (most ratings, targets x raters) is a hard
    problem, found greedily: from each of the ``starts`` rater pairs that share the most
    targets, add the rater who keeps the most targets complete while that adds ratings, and
    keep the block with the most ratings seen (more raters on a tie). One ``raters x raters``
    product, then ``O(starts x raters^2 x targets)`` at worst. Empty arrays when no two
    targets share ``min_raters`` raters.
    """
    data = _as_ratings(ratings)
    present = ~np.isnan(data)
    n_cols = present.shape[1]
    if n_cols < max(min_raters, 2):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    counts = present.T.astype(np.int64) @ present.astype(np.int64)  # targets shared by each rater pair
    a, b = np.triu_indices(n_cols, k=1)
    order = np.argsort(-counts[a, b], kind="stable")[:starts]
    best: tuple[int, int, list[int]] = (0, 0, [])
    for i in order:
        cols = [int(a[i]), int(b[i])]
        rows = present[:, cols[0]] & present[:, cols[1]]
        while True:
            n_rows = int(rows.sum())
            if n_rows >= 2 and len(cols) >= min_raters and (n_rows * len(cols), len(cols)) > best[:2]:
                best = (n_rows * len(cols), len(cols), sorted(cols))
            others = np.setdiff1d(np.arange(n_cols), cols)
            if len(others) == 0:
                break
            kept = present[rows][:, others].sum(axis=0)  # targets still complete with each candidate
            j = int(np.argmax(kept))
            if kept[j] < 2 or (kept[j] * (len(cols) + 1) <= n_rows * len(cols) and len(cols) >= min_raters):
                break
            cols.append(int(others[j]))
            rows &= present[:, others[j]]
    if not best[2]:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    chosen = np.array(best[2], dtype=np.int64)
    return np.flatnonzero(present[:, chosen].all(axis=1)), chosen


# ----------------------------------------------------------------------- correlations

METHODS = ("pearson", "spearman")


@dataclass(frozen=True)
class CorrelationResult:
    """A correlation over ``n`` pairs with a Fisher-z interval (``None`` when ``n = 3``)."""

    method: str
    r: float
    low: float | None
    high: float | None
    n: int
    p_value: float
    confidence: float


def correlate(x: Any, y: Any, *, method: str = "pearson", confidence: float = 0.95) -> CorrelationResult:
    """Pearson or Spearman correlation of paired values, with a 95 % (``confidence``) interval.

    Pairs where either value is ``NaN`` are left out. Spearman ranks ties by their mean rank
    (the Pearson correlation of mid-ranks). Intervals are Fisher's z: ``tanh(atanh r +- z /
    sqrt(n - 3))`` for Pearson, and with Bonett & Wright's (2000) standard error
    ``sqrt((1 + r^2 / 2) / (n - 3))`` for Spearman; with exactly three pairs there is no
    interval (``low``/``high`` are ``None``). Fewer than three pairs, or a side with one
    value only, raise :class:`UndefinedStatisticError`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_confidence(confidence)
    try:
        a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"x and y must be numeric: {exc}") from exc
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"x and y must be 1-D of one length, got shapes {a.shape} and {b.shape}")
    if np.any(np.isinf(a)) or np.any(np.isinf(b)):
        raise ValueError("x and y hold infinite values; use NaN for missing")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = len(a)
    if n < 3:
        raise UndefinedStatisticError(f"a correlation needs at least three pairs, got {n}")
    for name, side in (("x", a), ("y", b)):
        if np.ptp(side) == 0:
            raise UndefinedStatisticError(f"the correlation is undefined: {name} has one value only")
    # spearmanr is the Pearson correlation of mid-ranks, with its t-approximation p value
    result = stats.spearmanr(a, b) if method == "spearman" else stats.pearsonr(a, b)
    r, p = float(np.clip(result.statistic, -1.0, 1.0)), float(result.pvalue)
    low = high = None
    if n > 3:
        se = math.sqrt((1.0 + r * r / 2.0) / (n - 3)) if method == "spearman" else 1.0 / math.sqrt(n - 3)
        z = stats.norm.ppf(1.0 - (1.0 - confidence) / 2.0)
        with np.errstate(divide="ignore"):
            centre = float(np.arctanh(r))
        low, high = math.tanh(centre - z * se), math.tanh(centre + z * se)
    return CorrelationResult(method, r, low, high, n, p, confidence)


@dataclass(frozen=True)
class RaterCorrelation:
    """One rater against the mean of the other raters on the units they share.

    ``n`` units had this rater's value and at least one other; ``pearson``/``spearman`` are
    ``None`` with ``reason`` saying why when undefined (fewer than three units, constants).
    """

    rater: int
    n: int
    pearson: CorrelationResult | None
    spearman: CorrelationResult | None
    reason: str = ""


def rater_vs_mean(reliability_data: Any, *, confidence: float = 0.95) -> list[RaterCorrelation]:
    """Each rater's Pearson and Spearman correlation with the leave-one-out mean of the others.

    ``reliability_data`` is ``(raters, units)`` with ``NaN`` for missing values. Rater ``i`` is
    compared over the units it rated that at least one other rater rated too; the other
    raters' mean leaves ``i`` out, so a rater is never correlated with itself.
    """
    data = _as_ratings(reliability_data)
    present = ~np.isnan(data)
    totals, counts = np.where(present, data, 0.0).sum(axis=0), present.sum(axis=0)
    out = []
    for i in range(data.shape[0]):
        units = present[i] & (counts >= 2)
        others = (totals[units] - data[i, units]) / (counts[units] - 1)
        mine = data[i, units]
        found: dict[str, CorrelationResult | None] = {}
        reason = ""
        for method in METHODS:
            try:
                found[method] = correlate(mine, others, method=method, confidence=confidence)
            except UndefinedStatisticError as exc:
                found[method], reason = None, str(exc)
        out.append(RaterCorrelation(i, int(units.sum()), found["pearson"], found["spearman"], reason))
    return out
