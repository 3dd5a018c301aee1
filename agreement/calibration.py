"""The agreement report's calibration section: per-model calibration of CES confidence
against the human reference labels, read and reported.

The report shows, per model, on its images with a human reference label
(``review.reference``), the Expected Calibration Error (15 equal-width bins, Guo et al.
2017) of the model's answers and its reliability diagram, before and after the latest
stored temperature (:func:`report_calibration_section`). The samples are
``ml.calibration_fits.samples_from``'s (an annotator's raw distributions only; the merged
``pipeline`` answer on its stored distribution). Nothing is fitted or stored here:
``ml.recalibration`` fits the temperatures on the same samples and stores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from core.vocabulary import EMOTIONS

from annotations.domain import PIPELINE_AUTHOR
from ml.calibration_fits import N_BINS, DistributionRow, ModelCalibration, samples_from, without_raw_note
from ml.selectors import latest_temperatures
from ml.stages.calibration import apply_temperature, probs_to_logits, reliability_diagram


def report_calibration_section(*, reference: dict[int, int], rows: Iterable[DistributionRow],
                               labels: Sequence[str] = EMOTIONS) -> dict[str, Any]:
    """The agreement report's calibration: per model, on the report's images with a human
    reference label, the ECE of its raw distributions (before), the latest stored temperature
    and the ECE after applying it, with the reliability bins of both (nothing is fitted here:
    ``ml.recalibration.recalibrate`` fits and stores temperatures). ``labels``: the dataset's
    taxonomy, whose order the reference codes follow."""
    current = latest_temperatures()
    models = []
    for model, sample in samples_from(reference, rows, labels).items():
        temperature = None if model == PIPELINE_AUTHOR else current.get(model)
        fit = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=temperature,
                               n_without_raw=sample.n_without_raw, temperature=temperature)
        if sample.n_without_raw:
            fit.notes.append(without_raw_note(sample.n_without_raw))
        if fit.n:
            before = reliability_diagram(sample.probs, sample.labels, N_BINS)
            fit.ece_before, fit.reliability_before = before.ece, before.to_dict()
            if fit.merged:
                fit.notes.insert(0, "merged answer: its stored distribution is already calibrated through its "
                                    "annotators' temperatures")
            elif temperature is None:
                fit.notes.append("no calibration version stored yet: this model's answers are used as they are (T = 1)")
            else:
                after = reliability_diagram(apply_temperature(probs_to_logits(sample.probs), temperature),
                                            sample.labels, N_BINS)
                fit.ece_after, fit.reliability_after = after.ece, after.to_dict()
        else:
            fit.notes.append("no usable answer on an image with a human reference label")
        row = fit.as_dict()
        del row["current_temperature"]
        models.append(row)
    return {"n_bins": N_BINS, "models": models}
