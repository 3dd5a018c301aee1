"""The error every agreement and calibration statistic raises when it has no value (no Django).

Its own module so that ``agreement.statistics`` can re-export the calibration statistics
of ``agreement.calibration_stats`` while both raise the same class.
"""

from __future__ import annotations


class UndefinedStatisticError(ValueError):
    """The statistic has no value for this input (e.g. expected disagreement is 0)."""
