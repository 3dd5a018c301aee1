"""What the report and calibration pages show: the report dict plus its plots (inline SVG)."""

from __future__ import annotations

from typing import Any

from agreement import svg
from agreement.report import REFERENCE
from ml.calibration_fits import ModelCalibration


def annotator_name(annotator_id: str) -> str:
    """``reviewer:alice`` → ``alice``; ``model:gpt-4o`` → ``gpt-4o (model)``; ``reference`` → ``human reference``."""
    if annotator_id == REFERENCE:
        return "human reference"
    kind, _, name = annotator_id.partition(":")
    return f"{name} (model)" if kind == "model" else name


def _transposed(matrix: dict[str, Any]) -> dict[str, Any]:
    return {"a": matrix["b"], "b": matrix["a"], "n": matrix["n"], "matrix": [list(r) for r in zip(*matrix["matrix"])]}


def chosen_confusion(confusions: list[dict[str, Any]], a: str | None, b: str | None) -> dict[str, Any] | None:
    """The matrix of annotators ``a`` (rows) and ``b`` (columns); by default the first reviewer pair."""
    for matrix in confusions:
        if (matrix["a"], matrix["b"]) == (a, b):
            return matrix
        if (matrix["b"], matrix["a"]) == (a, b):
            return _transposed(matrix)
    reviewers = [m for m in confusions if m["a"].startswith("reviewer:") and m["b"].startswith("reviewer:")]
    return (reviewers or confusions or [None])[0]


def _heatmap(matrix: dict[str, Any], categories: list[str]) -> Any:
    a, b = annotator_name(matrix["a"]), annotator_name(matrix["b"])
    return svg.heatmap(matrix["matrix"], categories, row_title=a, col_title=b,
                       title=f"Confusion matrix: {a} (rows) vs {b} (columns), {matrix['n']} items")


def report_context(report: dict[str, Any], *, a: str | None = None, b: str | None = None) -> dict[str, Any]:
    labels, elements = report["labels"], report["elements"]
    categories = labels["categories"]
    annotators = sorted({m["a"] for m in labels["confusion"]} | {m["b"] for m in labels["confusion"]})
    chosen = chosen_confusion(labels["confusion"], a, b)
    iou_plots = []
    for key, what in (("box_iou", "Box IoU"), ("mask_iou", "Mask IoU")):
        summary = elements[key]
        if summary.get("histogram"):
            iou_plots.append((what, summary, svg.histogram(summary["histogram"]["edges"], summary["histogram"]["counts"],
                                                           x_label="IoU", title=f"{what} between reviewers")))
        else:
            iou_plots.append((what, summary, None))
    return {
        "report": report,
        "annotators": [(x, annotator_name(x)) for x in annotators],
        "chosen": chosen,
        "chosen_names": (annotator_name(chosen["a"]), annotator_name(chosen["b"])) if chosen else None,
        "chosen_plot": _heatmap(chosen, categories) if chosen else None,
        "model_plots": [(m, _heatmap(m["confusion"], categories) if m["confusion"]["n"] else None) for m in report["models"]],
        "iou_plots": iou_plots,
        "reliability_plots": [
            (m, svg.reliability_diagram(m["reliability"]["before"], m["reliability"]["after"],
                                        title=f"Reliability of {m['model']} ({m['n']} answers)")
             if m["reliability"]["before"] else None)
            for m in (report.get("calibration") or {}).get("models", [])
        ],
    }


def _plotted(fit: ModelCalibration) -> str:
    return f"{fit.n_held_out} held-out audited answers" if fit.sample == "audit" else f"{fit.n} answers"


def calibration_plots(fits: list[ModelCalibration]) -> list[tuple[ModelCalibration, Any]]:
    """Each fit with its reliability diagram, or None when it has no usable answer."""
    return [
        (fit, svg.reliability_diagram(fit.reliability_before, fit.reliability_after,
                                      title=f"Reliability of {fit.model} ({_plotted(fit)})")
         if fit.reliability_before else None)
        for fit in fits
    ]
