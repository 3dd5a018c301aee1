"""The error every agreement and calibration statistic raises when it has no value (no Django).

Here, in ``core``, so that the agreement statistics (``agreement.statistics``) and the
calibration statistics of the pipeline stages (``ml.stages.calibration``) raise one and the
same class, and ``agreement.statistics`` can re-export the latter.
"""

from __future__ import annotations


class UndefinedStatisticError(ValueError):
    """The statistic has no value for this input (e.g. expected disagreement is 0)."""
