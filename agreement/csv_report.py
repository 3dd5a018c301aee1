"""The agreement report as CSV rows: one statistic per row, with its interval or the reason
it is undefined."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

HEADER = ["section", "statistic", "a", "b", "value", "low", "high", "n", "note"]


def _row(section: str, statistic: str, result: dict[str, Any] | None, a: str = "", b: str = "") -> list[Any]:
    result = result or {}
    note = result.get("undefined", "")
    if "raters" in result:
        note = f"{note}; items with {result['raters']} ratings".strip("; ")
    n = result.get("n", result.get("count", ""))
    value = result.get("value", result.get("mean"))
    low, high = result.get("low"), result.get("high")  # None: a value without an interval (3 pairs)
    return [section, statistic, a, b, "" if value is None else value, "" if low is None else low,
            "" if high is None else high, "" if n is None else n, note]


def report_rows(report: dict[str, Any]) -> Iterator[list[Any]]:
    labels, elements = report["labels"], report["elements"]
    yield _row("labels", "krippendorff_alpha_nominal", labels["krippendorff_alpha"])
    yield _row("labels", "fleiss_kappa", labels["fleiss_kappa"])
    for pair in labels["pairwise_cohen_kappa"]:
        yield _row("labels", "cohen_kappa", pair["kappa"], pair["a"], pair["b"])
    for row in labels["per_class"]:
        yield _row("per_class", "specific_agreement",
                   {"value": row["specific_agreement"], "undefined": row["undefined_specific"] or ""}, row["label"])
        yield _row("per_class", "fleiss_kappa", {"value": row["fleiss_kappa"], "undefined": row["undefined_fleiss"] or ""},
                   row["label"])
    for matrix in labels["confusion"]:
        for i, row in enumerate(matrix["matrix"]):
            for j, count in enumerate(row):
                if count:
                    yield ["confusion", f"{labels['categories'][i]}->{labels['categories'][j]}", matrix["a"], matrix["b"],
                           count, "", "", matrix["n"], ""]
    yield _row("confidence", "krippendorff_alpha_interval", report["confidence"]["krippendorff_alpha_interval"])
    yield _row("elements", "decision_krippendorff_alpha", elements["decision_alpha"])
    yield _row("elements", "decision_fleiss_kappa", elements["decision_fleiss_kappa"])
    for name in ("box_iou", "mask_iou"):
        yield _row("elements", f"{name}_mean", elements[name])
        if elements[name].get("median") is not None:
            yield _row("elements", f"{name}_median", {"value": elements[name]["median"], "n": elements[name]["count"]})
    yield _row("elements", "phrase_exact_agreement", elements["phrase_exact"])
    yield _row("elements", "phrase_semantic_similarity", elements["phrase_semantic"])
    for model in report["models"]:
        yield _row("models", "cohen_kappa_vs_reference", model["kappa"], model["model"], "reference")
        yield _row("models", "accuracy_vs_reference", {"value": model["accuracy"], "n": model["n"]}, model["model"], "reference")
        yield _row("models", "krippendorff_alpha_with_reviewers", model["alpha_with_reviewers"], model["model"])
        elements = model["elements"]
        yield _row("models", "elements_kept_by_reviewers", {"value": elements["kept_by_reviewers"], "n": elements["decisions"],
                                                           "undefined": elements.get("undefined", "")}, model["model"])
        if elements["decisions"]:
            for name in ("box_iou", "mask_iou"):
                yield _row("models", f"{name}_mean_vs_reviewers", elements[name], model["model"])
            yield _row("models", "phrase_exact_vs_reviewers", elements["phrase_exact"], model["model"])
            yield _row("models", "phrase_semantic_vs_reviewers", elements["phrase_semantic"], model["model"])
    yield from calibration_rows(report.get("calibration") or {"models": []})
    yield from rating_rows(report.get("ratings") or {"scales": []})
    yield from qa_rows(report.get("qa"))


ICC_STATISTICS = {"ICC2": "icc_agreement_single", "ICC2k": "icc_agreement_average",
                  "ICC3": "icc_consistency_single", "ICC3k": "icc_consistency_average"}


def rating_rows(section: dict[str, Any]) -> Iterator[list[Any]]:
    """Per scale (``a``): the ICCs (``note``: the McGraw & Wong name and the raters of the
    complete block), alpha at interval and ordinal level, each rater (``b``) against the
    others' mean and each model (``b``) against the people's mean."""
    for scale in section["scales"]:
        key, icc = scale["scale"], scale["icc"]
        raters = f"raters {', '.join(icc['raters'])}" if icc.get("raters") else ""
        if icc.get("forms"):
            for form, statistic in ICC_STATISTICS.items():
                result = icc["forms"][form]
                note = "; ".join(x for x in (result["name"], raters, result.get("undefined", "")) if x)
                yield _row("ratings", statistic, {**result, "n": icc["n"], "undefined": note}, key)
        else:
            for statistic in ICC_STATISTICS.values():
                yield _row("ratings", statistic, icc, key)
        for level in ("interval", "ordinal"):
            yield _row("ratings", f"krippendorff_alpha_{level}", scale[f"krippendorff_alpha_{level}"], key)
        for row in scale["rater_vs_mean"]:
            for method in ("pearson", "spearman"):
                yield _row("ratings", f"rater_vs_mean_{method}", row[method], key, row["rater"])
        for row in scale["model_vs_human"]:
            for method in ("pearson", "spearman"):
                yield _row("ratings", f"model_vs_human_{method}", row[method], key, row["model"])


def qa_rows(section: dict[str, Any] | None) -> Iterator[list[Any]]:
    """Acceptance, model and critic answer accuracy: ``a`` the category, ``b`` the dimension
    (``all`` where pooled); section ``qa_models`` per generating model (``a``)."""
    if not section:
        return
    rows = [section["overall"], *section["by_category"], *section["by_dimension"], *section["by_cell"]]
    for row in rows:
        a, b = row["category"] or "all", row["dimension"] or "all"
        yield from _qa_rates("qa", row, a, b)
    for row in section["by_model"]:
        yield from _qa_rates("qa_models", row, row["model"] or "(not generated)", "")


def _qa_rates(section: str, row: dict[str, Any], a: str, b: str) -> Iterator[list[Any]]:
    for statistic in ("acceptance", "model_accuracy", "critic_accuracy"):
        result = row[statistic]
        note = result.get("undefined") or f"{result['successes']} of {result['n']}"
        if statistic == "acceptance" and row["reasons"]:
            note += "; rejected: " + ", ".join(f"{k} {v}" for k, v in row["reasons"].items())
        yield _row(section, statistic, {**result, "undefined": note}, a, b)


def calibration_rows(section: dict[str, Any]) -> Iterator[list[Any]]:
    """Per model: n, ECE before and after the latest stored temperature, the temperature, and
    each reliability bin (``a``: the bin's range, ``value``: accuracy, ``note``: mean confidence)."""
    for model in section["models"]:
        name, n, note = model["model"], model["n"], "; ".join(model["notes"])
        yield _row("calibration", "ece_before", {"value": model["ece_before"], "n": n, "undefined": note}, name)
        yield _row("calibration", "temperature", {"value": model["temperature"], "n": n, "undefined": note}, name)
        yield _row("calibration", "ece_after", {"value": model["ece_after"], "n": n, "undefined": note}, name)
        for when in ("before", "after"):
            bins = model["reliability"][when]
            if not bins:
                continue
            edges = bins["edges"]
            for lo, hi, count, accuracy, confidence in zip(edges, edges[1:], bins["counts"], bins["accuracy"],
                                                           bins["confidence"]):
                if count:
                    yield ["calibration", f"reliability_{when}", name, f"{lo:.4f}-{hi:.4f}", accuracy, "", "", count,
                           f"mean confidence {confidence:.4f}"]


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): names come from
# imports and model configuration, so they are untrusted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def report_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    writer.writerows([_cell(v) for v in row] for row in report_rows(report))
    return buffer.getvalue()
