"""Agreement statistics: pure numpy functions (no Django).

Conventions
- *Labels* are 1-D sequences of hashable category values (strings or numbers);
  ``categories`` fixes the order of rows/columns in every matrix returned.
- A *counts table* is an ``(units, categories)`` array: cell ``[i, j]`` is the number
  of raters who put unit ``i`` in category ``j`` (Fleiss' layout).
- *Reliability data* is a ``(raters, units)`` float array with ``NaN`` for a missing
  value (Krippendorff's layout). Categories are encoded as numbers.

A statistic that is undefined for its input (no data, no pairable unit, no expected
disagreement) raises :class:`UndefinedStatisticError`; it is never reported as 1.0.
Per-category arrays hold ``NaN`` for a category whose value is undefined.

Box and mask IoU and phrase agreement are in :mod:`agreement.similarity`. The calibration
statistics :func:`expected_calibration_error` and :func:`fit_temperature` live in
:mod:`ml.stages.calibration` and are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from core.errors import UndefinedStatisticError
from ml.stages.calibration import expected_calibration_error, fit_temperature

__all__ = [
    "LEVELS", "ConfidenceInterval", "UndefinedStatisticError", "bootstrap_ci", "cohen_kappa", "cohen_kappa_per_class",
    "confusion_matrix", "counts_table", "expected_calibration_error", "fit_temperature", "fleiss_kappa",
    "fleiss_kappa_per_category", "krippendorff_alpha", "krippendorff_alpha_ci", "specific_agreement",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
MAX_RATIO_VALUES = 20_000  # the ratio metric's expected disagreement is O(values^2)
DENSE_COUNTS_CELLS = 2**23  # values x units up to which alpha keeps a dense count matrix (64 MB)


# --------------------------------------------------------------------------- labels


def _encode(labels: Any, categories: np.ndarray, name: str) -> np.ndarray:
    """Indices of ``labels`` in ``categories`` (1-D); unknown labels raise ``ValueError``."""
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {values.shape}")
    order = np.argsort(categories, kind="stable")
    ranked = categories[order]
    pos = np.clip(np.searchsorted(ranked, values), 0, len(ranked) - 1)
    unknown = ranked[pos] != values
    if np.any(unknown):
        raise ValueError(f"{name} holds labels not in categories: {sorted(set(values[unknown].tolist()))[:5]}")
    return order[pos]


def _categories(categories: Sequence[Any] | None, *labels: Any) -> np.ndarray:
    if categories is None:
        return np.unique(np.concatenate([np.asarray(x).ravel() for x in labels]))
    cats = np.asarray(categories)
    if cats.ndim != 1 or len(cats) == 0:
        raise ValueError("categories must be a non-empty 1-D sequence")
    if len(np.unique(cats)) != len(cats):
        raise ValueError("categories must be distinct")
    return cats


def confusion_matrix(labels_a: Any, labels_b: Any, categories: Sequence[Any] | None = None) -> np.ndarray:
    """``(K, K)`` int64 counts: row = annotator A's label, column = annotator B's.

    ``categories`` (length K) sets the order; by default the sorted union of labels.
    Both label sequences must have the same length (one entry per item both rated).
    """
    cats = _categories(categories, labels_a, labels_b)
    a = _encode(labels_a, cats, "labels_a")
    b = _encode(labels_b, cats, "labels_b")
    if a.shape != b.shape:
        raise ValueError(f"labels_a and labels_b differ in length: {a.shape[0]} vs {b.shape[0]}")
    k = len(cats)
    return np.bincount(a * k + b, minlength=k * k).reshape(k, k)


def _kappa_from_confusion(table: np.ndarray) -> float:
    n = table.sum()
    if n == 0:
        raise UndefinedStatisticError("Cohen's kappa needs at least one item rated by both annotators")
    observed = np.trace(table) / n
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / n**2
    if np.isclose(expected, 1.0, rtol=0.0, atol=1e-12):
        raise UndefinedStatisticError("Cohen's kappa is undefined: both annotators used one and the same category")
    return float((observed - expected) / (1.0 - expected))


def cohen_kappa(labels_a: Any, labels_b: Any, categories: Sequence[Any] | None = None) -> float:
    """Cohen's (1960) unweighted kappa for two annotators on the same items (nominal)."""
    return _kappa_from_confusion(confusion_matrix(labels_a, labels_b, categories))


def cohen_kappa_per_class(labels_a: Any, labels_b: Any, categories: Sequence[Any] | None = None) -> np.ndarray:
    """``(K,)`` one-vs-rest kappa per category (``NaN`` where a 2x2 kappa is undefined)."""
    table = confusion_matrix(labels_a, labels_b, categories)
    n, out = table.sum(), np.full(len(table), np.nan)
    for j in range(len(table)):  # K small 2x2 tables, not a loop over items
        both, a_only, b_only = table[j, j], table[j].sum() - table[j, j], table[:, j].sum() - table[j, j]
        binary = np.array([[both, a_only], [b_only, n - both - a_only - b_only]])
        try:
            out[j] = _kappa_from_confusion(binary)
        except UndefinedStatisticError:
            pass
    return out


# --------------------------------------------------------------------- counts tables


def counts_table(reliability_data: Any, categories: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(units, K)`` counts table and the ``(K,)`` categories from ``(raters, units)`` data.

    Missing values (``NaN``) are skipped, so rows may sum to different rater numbers.
    """
    data = _as_reliability_data(reliability_data)
    present = ~np.isnan(data)
    cats = _categories(categories, data[present])
    unit = np.broadcast_to(np.arange(data.shape[1]), data.shape)[present]
    codes = _encode(data[present], cats, "reliability_data")
    k = len(cats)
    return np.bincount(unit * k + codes, minlength=data.shape[1] * k).reshape(-1, k), cats


def _as_counts_table(table: Any) -> np.ndarray:
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] < 1:
        raise ValueError(f"table must be 2-D (units, categories), got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError("table must hold non-negative whole counts")
    return counts


def _fleiss_parts(table: Any) -> tuple[np.ndarray, int, np.ndarray]:
    counts = _as_counts_table(table)
    raters = counts.sum(axis=1)
    if counts.shape[0] == 0:
        raise UndefinedStatisticError("Fleiss' kappa needs at least one unit")
    if np.any(raters != raters[0]):
        raise ValueError(
            "Fleiss' kappa needs the same number of ratings for every unit; got "
            f"{int(raters.min())}..{int(raters.max())}. Use only complete units, or krippendorff_alpha for missing data"
        )
    n = int(raters[0])
    if n < 2:
        raise UndefinedStatisticError("Fleiss' kappa needs at least two ratings per unit")
    return counts, n, counts.sum(axis=0) / counts.sum()


def fleiss_kappa(table: Any) -> float:
    """Fleiss' (1971) kappa from a ``(units, categories)`` counts table, equal raters per unit."""
    counts, n, p = _fleiss_parts(table)
    observed = float(np.mean((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))))
    expected = float(p @ p)
    if np.isclose(expected, 1.0, rtol=0.0, atol=1e-12):
        raise UndefinedStatisticError("Fleiss' kappa is undefined: every rating is the same category")
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa_per_category(table: Any) -> np.ndarray:
    """``(K,)`` Fleiss' (1971) kappa of each category against the rest (``NaN`` if unused/universal)."""
    counts, n, p = _fleiss_parts(table)
    units = counts.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = 1.0 - (counts * (n - counts)).sum(axis=0) / (units * n * (n - 1) * p * (1.0 - p))
    return np.where((p > 0) & (p < 1), kappa, np.nan)


def specific_agreement(table: Any) -> np.ndarray:
    """``(K,)`` proportion of specific agreement per category (Uebersax; Fleiss 1971).

    Of all ordered rater pairs within a unit that involve category ``j``, the share in which
    both raters said ``j``. Rater numbers may differ by unit; units with one rating are skipped.
    For two raters this is ``2a / (2a + b + c)``. ``NaN`` for a category nobody used.
    """
    counts = _as_counts_table(table)
    raters = counts.sum(axis=1, keepdims=True)
    counts = counts[raters[:, 0] >= 2]
    agree = (counts * (counts - 1)).sum(axis=0)
    possible = (counts * (raters[raters[:, 0] >= 2] - 1)).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(possible > 0, agree / possible, np.nan)


# ----------------------------------------------------------------- Krippendorff alpha


def _as_reliability_data(reliability_data: Any) -> np.ndarray:
    try:
        data = np.asarray(reliability_data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reliability_data must be numeric (categories encoded as numbers): {exc}") from exc
    if data.ndim != 2:
        raise ValueError(f"reliability_data must be 2-D (raters, units), got shape {data.shape}")
    if np.any(np.isinf(data)):
        raise ValueError("reliability_data holds infinite values; use NaN for missing")
    return data


@dataclass(frozen=True)
class _PairableUnits:
    """Reliability data reduced to the per-unit pieces alpha is a weighted sum of.

    ``U`` pairable units (two or more values), ``V`` distinct values, ``E`` (unit, value)
    entries, ``P`` pairs of distinct values inside one unit. Weighting unit ``u`` by
    ``w[u]`` equals repeating it ``w[u]`` times, which is what a bootstrap resample does.
    """

    level: str
    values: np.ndarray  # (V,) ascending
    unit_ids: np.ndarray  # (U,) column of each pairable unit in the input
    entry_unit: np.ndarray  # (E,)
    entry_code: np.ndarray  # (E,)
    entry_count: np.ndarray  # (E,) float
    pair_unit: np.ndarray  # (P,)
    pair_lo: np.ndarray  # (P,) codes, lo < hi
    pair_hi: np.ndarray  # (P,)
    pair_weight: np.ndarray  # (P,) 2 n_uc n_uk / (m_u - 1): both orders of the pair

    @classmethod
    def from_data(cls, reliability_data: Any, level: str) -> _PairableUnits:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        data = _as_reliability_data(reliability_data)
        present = ~np.isnan(data)
        unit_ids = np.flatnonzero(present.sum(axis=0) >= 2)
        if len(unit_ids) == 0:
            raise UndefinedStatisticError("alpha is undefined: no unit has two or more values")
        sub, mask = data[:, unit_ids].T, present[:, unit_ids].T  # unit-major
        values, codes = np.unique(sub[mask], return_inverse=True)
        if level == "ratio" and (values[0] < 0 or len(values) > MAX_RATIO_VALUES):
            raise ValueError(f"ratio level needs non-negative values, at most {MAX_RATIO_VALUES} distinct")
        unit = np.repeat(np.arange(len(unit_ids)), mask.sum(axis=1))
        keys, entry_count = np.unique(unit * len(values) + codes, return_counts=True)
        entry_unit, entry_code = np.divmod(keys, len(values))
        m = np.bincount(unit, minlength=len(unit_ids)).astype(np.float64)
        lo, hi = _pairs_within_units(entry_unit)
        weight = 2.0 * entry_count[lo] * entry_count[hi] / (m[entry_unit[lo]] - 1.0)
        return cls(level, values, unit_ids, entry_unit, entry_code, entry_count.astype(np.float64),
                   entry_unit[lo], entry_code[lo], entry_code[hi], weight)

    @cached_property
    def unit_disagreement(self) -> np.ndarray:
        """``(U,)`` observed coincidence-weighted disagreement per unit (metric of the full data)."""
        totals = self.value_totals(np.ones(self.n_units)) if self.level == "ordinal" else None
        delta = self.pair_distance(totals)
        return np.bincount(self.pair_unit, weights=self.pair_weight * delta, minlength=self.n_units)

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    @cached_property
    def value_counts(self) -> np.ndarray | None:
        """``(V, U)`` dense value counts per unit when that fits ``DENSE_COUNTS_CELLS``, else ``None``."""
        if len(self.values) * self.n_units > DENSE_COUNTS_CELLS:
            return None
        counts = np.zeros((len(self.values), self.n_units))
        counts[self.entry_code, self.entry_unit] = self.entry_count
        return counts

    def value_totals(self, w: np.ndarray) -> np.ndarray:
        """``(V,)`` how often each value occurs among pairable values, units weighted by ``w``."""
        if self.value_counts is not None:  # one matrix-vector product: several times faster
            return self.value_counts @ w
        return np.bincount(self.entry_code, weights=w[self.entry_unit] * self.entry_count, minlength=len(self.values))

    @cached_property
    def unit_range(self) -> tuple[np.ndarray, np.ndarray]:
        """``(U,)`` lowest and highest value code of each unit (entries sorted by unit, then code)."""
        first = np.flatnonzero(np.r_[True, np.diff(self.entry_unit) > 0])
        last = np.r_[first[1:] - 1, len(self.entry_unit) - 1]
        return self.entry_code[first], self.entry_code[last]

    def _single_value(self, w: np.ndarray, totals: np.ndarray | None) -> bool:
        """Whether the units weighted by ``w`` hold one distinct value only (alpha undefined)."""
        if totals is not None:
            return np.count_nonzero(totals) < 2
        low, high = self.unit_range
        used = w > 0
        return not used.any() or low[used].min() == high[used].max()

    @cached_property
    def interval_moments(self) -> np.ndarray:
        """``(3, U)`` count, sum and sum of squares of each unit's values (centred)."""
        x = (self.values - self.values.mean())[self.entry_code]
        return np.stack([np.bincount(self.entry_unit, self.entry_count * x**p, self.n_units) for p in range(3)])

    def pair_distance(self, totals: np.ndarray | None) -> np.ndarray:
        """``(P,)`` squared distance delta^2 of each within-unit pair under the level's metric
        (``totals``: the value totals, needed by the ordinal metric only)."""
        if self.level == "nominal":
            return np.ones(len(self.pair_lo))
        if self.level == "ordinal":  # delta^2 = (mid-rank_k - mid-rank_c)^2
            ranks = _midranks(totals)
            return (ranks[self.pair_hi] - ranks[self.pair_lo]) ** 2
        a, b = self.values[self.pair_lo], self.values[self.pair_hi]
        return ((b - a) / (b + a)) ** 2 if self.level == "ratio" else (b - a) ** 2

    def expected(self, w: np.ndarray, totals: np.ndarray | None) -> tuple[float, float]:
        """Pairable values ``n`` and ``sum_c sum_k n_c n_k delta^2_ck`` (ordered pairs), units weighted
        by ``w``; ``totals`` are the value totals for ``w`` (not needed for interval)."""
        if self.level == "interval":  # 2 (n sum x^2 - (sum x)^2): linear in w, no per-value totals
            n, s1, s2 = self.interval_moments @ w
            return float(n), float(2.0 * (n * s2 - s1 * s1))
        n = float(totals.sum())
        if self.level == "nominal":
            return n, float(n * n - totals @ totals)
        if self.level == "ratio":
            return n, _ratio_expected(self.values, totals)
        ranks = _midranks(totals)
        return n, float(2.0 * n * (totals @ (ranks - totals @ ranks / n) ** 2))

    def alpha(self, w: np.ndarray) -> float:
        """Alpha with unit ``u`` counted ``w[u]`` times (``w`` of shape ``(U,)``)."""
        totals = None if self.level == "interval" else self.value_totals(w)
        if self._single_value(w, totals):
            raise UndefinedStatisticError(
                "alpha is undefined: all pairable values are equal (no expected disagreement)"
            )
        n, expected = self.expected(w, totals)
        if self.level == "ordinal":  # the ordinal metric depends on the value frequencies
            observed = float(w[self.pair_unit] * self.pair_weight @ self.pair_distance(totals))
        else:
            observed = float(w @ self.unit_disagreement)
        return 1.0 - (n - 1.0) * observed / expected


def _midranks(totals: np.ndarray) -> np.ndarray:
    """Ordinal coordinates: ``(k-th value's cumulative total) - (its total) / 2``, so that
    Krippendorff's ordinal delta^2_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 = (r_k - r_c)^2."""
    return np.cumsum(totals) - totals / 2.0


def _pairs_within_units(entry_unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, of entries of the same unit (entries grouped by unit)."""
    lo, hi = [], []
    offset = 1
    while offset < len(entry_unit):  # at most (distinct values in one unit) iterations
        i = np.flatnonzero(entry_unit[:-offset] == entry_unit[offset:])
        if len(i) == 0:
            break
        lo.append(i)
        hi.append(i + offset)
        offset += 1
    empty = np.empty(0, dtype=np.int64)
    return (np.concatenate(lo), np.concatenate(hi)) if lo else (empty, empty)


def _ratio_expected(values: np.ndarray, totals: np.ndarray, cells: int = 2**21) -> float:
    """``sum_c sum_k n_c n_k ((c - k) / (c + k))^2`` in row blocks of at most ``cells`` entries."""
    total = 0.0
    block = max(1, cells // len(values))
    for start in range(0, len(values), block):
        a = values[start : start + block, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.nan_to_num(((a - values) / (a + values)) ** 2)
        total += float(totals[start : start + block] @ d @ totals)
    return total


def krippendorff_alpha(reliability_data: Any, level: str = "nominal") -> float:
    """Krippendorff's alpha for ``(raters, units)`` data with ``NaN`` for missing values.

    ``level``: ``nominal``, ``ordinal``, ``interval`` or ``ratio`` (difference functions of
    Krippendorff 2011). Values may be any numbers; ratio needs non-negative ones. Units with
    fewer than two values are not pairable and are dropped. Vectorised: one sort of the
    values, no loop over units.
    """
    units = _PairableUnits.from_data(reliability_data, level)
    return units.alpha(np.ones(units.n_units))


# ------------------------------------------------------------------------ bootstrap


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a percentile bootstrap interval; unpacks as ``(estimate, low, high)``.

    ``n_undefined`` resamples had no value (e.g. one category only) and were left out.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_undefined: int

    def __iter__(self) -> Iterator[float]:
        return iter((self.estimate, self.low, self.high))


def _resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Item indices of each resample (drawn with replacement), reproducible for a ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield rng.integers(0, n, size=n)


def _interval(estimate: float, draws: list[float], confidence: float, n_resamples: int) -> ConfidenceInterval:
    defined = np.array([d for d in draws if not np.isnan(d)])
    if len(defined) == 0:
        raise UndefinedStatisticError("the statistic is undefined in every bootstrap resample")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    n_undefined = n_resamples - len(defined)
    return ConfidenceInterval(float(estimate), float(low), float(high), confidence, n_resamples, n_undefined)


def _check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def bootstrap_ci(
    statistic: Callable[..., float],
    data: Any,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    axis: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap interval of ``statistic`` resampling items along ``axis``.

    ``data`` is one array (``statistic(array)``) or a tuple of arrays resampled together
    (``statistic(*arrays)``, e.g. two annotators' labels). Items are units: rows of a counts
    table (``axis=0``), columns of reliability data (``axis=1``).
    """
    _check_bootstrap_args(n_resamples, confidence)
    arrays = tuple(np.asarray(x) for x in data) if isinstance(data, tuple) else (np.asarray(data),)
    sizes = {x.shape[axis] for x in arrays}
    if len(sizes) != 1:
        raise ValueError(f"arrays differ in length along axis {axis}: {sorted(sizes)}")
    estimate = float(statistic(*arrays))
    draws = []
    for idx in _resample_indices(sizes.pop(), n_resamples, seed):
        try:
            draws.append(float(statistic(*(np.take(x, idx, axis=axis) for x in arrays))))
        except UndefinedStatisticError:
            draws.append(np.nan)
    return _interval(estimate, draws, confidence, n_resamples)


def krippendorff_alpha_ci(
    reliability_data: Any,
    level: str = "nominal",
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ConfidenceInterval:
    """Bootstrap interval of alpha resampling units; same draws as
    ``bootstrap_ci(partial(krippendorff_alpha, level=level), data, axis=1)``, but each
    resample is a weighted sum of per-unit contributions instead of a recomputation.
    """
    _check_bootstrap_args(n_resamples, confidence)
    units = _PairableUnits.from_data(reliability_data, level)
    estimate = units.alpha(np.ones(units.n_units))
    n_all = np.asarray(reliability_data).shape[1]
    draws = []
    for idx in _resample_indices(n_all, n_resamples, seed):
        w = np.bincount(idx, minlength=n_all)[units.unit_ids].astype(np.float64)
        try:
            draws.append(units.alpha(w))
        except UndefinedStatisticError:
            draws.append(np.nan)
    return _interval(estimate, draws, confidence, n_resamples)
