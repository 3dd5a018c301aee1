"""Which images an export takes, and its options: parsed once, stored on the snapshot as JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotations.errors import InvalidAnnotation
from annotations.models import Annotation, ImageSource, ImageStatus
from core.vocabulary import EMOTIONS
from exports.writers.images import IMAGE_MODES
from core.text import TextPolicyError, check_datetime

DATE_FIELDS = ("image", "annotation")
FILTER_KEYS = frozenset(
    {"status", "source", "label", "since", "until", "date_field", "min_agreement", "include_auto_accepted"}
)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


class InvalidExportRequest(InvalidAnnotation):
    """A filter or option of an export request is not valid (``field`` names it)."""


def _choices(data: Mapping[str, Any], key: str, allowed: list[str] | tuple[str, ...], default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = data.get(key)
    if value in (None, "", []):
        return default
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise InvalidExportRequest(key, "must be a name or a list of names")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InvalidExportRequest(key, f"unknown value(s) {', '.join(map(repr, unknown))}; expected {', '.join(allowed)}")
    return tuple(sorted(set(values), key=list(allowed).index))


def _moment(value: Any, key: str, *, end: bool) -> datetime | None:
    """An ISO date or datetime, in UTC; a bare date as ``until`` means the end of that day."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time.min)
        value = value.isoformat()
    elif isinstance(value, str):
        try:  # a bare date first: parse_datetime reads "2026-01-31" as that day's midnight
            day = parse_date(value)
            parsed = parse_datetime(value) if day is None else datetime.combine(day + timedelta(days=1) if end else day, time.min)
        except (ValueError, OverflowError):  # well-formed but no such moment: 2026-02-30, +25:00, 9999-12-31 + 1 day
            parsed = None
    else:
        parsed = None
    if parsed is None:
        raise InvalidExportRequest(key, f"must be an ISO date or date-time (2026-01-31 or 2026-01-31T12:00:00Z), got {value!r}")
    try:
        return check_datetime(timezone.make_aware(parsed, UTC) if timezone.is_naive(parsed) else parsed, field=key)
    except TextPolicyError as exc:
        raise InvalidExportRequest(key, exc.detail) from None


def _flag(value: Any, key: str) -> bool:
    """A boolean, or its usual spellings in a form or query string (``true``/``false``, ``1``/``0``, ``on``)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidExportRequest(key, f"must be true or false, got {value!r}")


@dataclass(frozen=True)
class ExportFilters:
    """Status (default: approved only), source, label, a date range and a minimum agreement.

    ``since`` is inclusive and ``until`` exclusive (a bare date: through that day).
    ``date_field`` says what they apply to: ``image`` (when the image was added) or
    ``annotation`` (when its final annotation was made). ``label`` and
    ``min_agreement`` apply to the image's label and agreement; the final
    annotation's label must match the label filter too.

    ``include_auto_accepted`` (default false) also takes images whose only final
    answer is the pipeline's auto-accepted model answer (machine-accepted, not
    human-approved; see :func:`annotations.selectors.final_annotation_ids`).
    """

    status: tuple[str, ...] = (ImageStatus.APPROVED,)
    source: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    date_field: str = "image"
    min_agreement: float | None = None
    include_auto_accepted: bool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any], labels: tuple[str, ...] = EMOTIONS) -> ExportFilters:
        """``labels``: the dataset's taxonomy's, which ``label`` must name."""
        if not isinstance(data, Mapping):
            raise InvalidExportRequest("filters", "must be an object")
        unknown = sorted(set(data) - FILTER_KEYS)
        if unknown:
            raise InvalidExportRequest("filters", f"unknown filter(s) {', '.join(unknown)}; expected {', '.join(sorted(FILTER_KEYS))}")
        date_field = data.get("date_field") or "image"
        if date_field not in DATE_FIELDS:
            raise InvalidExportRequest("date_field", f"must be one of {', '.join(DATE_FIELDS)}")
        minimum = data.get("min_agreement")
        if minimum in ("", None):
            minimum = None
        else:
            try:
                minimum = float(minimum)
            except (TypeError, ValueError):
                minimum = math.nan
            if not 0 <= minimum <= 1:
                raise InvalidExportRequest("min_agreement", f"must be a number in [0, 1], got {data.get('min_agreement')!r}")
        filters = cls(
            status=_choices(data, "status", ImageStatus.values, default=(ImageStatus.APPROVED,)),
            source=_choices(data, "source", ImageSource.values),
            label=_choices(data, "label", labels),
            since=_moment(data.get("since"), "since", end=False),
            until=_moment(data.get("until"), "until", end=True),
            date_field=date_field,
            min_agreement=minimum,
            include_auto_accepted=_flag(data.get("include_auto_accepted"), "include_auto_accepted"),
        )
        if filters.since and filters.until and filters.since >= filters.until:
            raise InvalidExportRequest("until", "must be later than since")
        return filters

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe; ``ExportFilters.parse(f.as_dict()) == f``."""
        return {
            "status": list(self.status), "source": list(self.source), "label": list(self.label),
            "since": self.since.isoformat() if self.since else None, "until": self.until.isoformat() if self.until else None,
            "date_field": self.date_field, "min_agreement": self.min_agreement,
            "include_auto_accepted": self.include_auto_accepted,
        }

    def accepts(self, final: Annotation) -> bool:
        """The checks that need the final annotation (label, and the date when it is the annotation's)."""
        if self.label and final.ces_label not in self.label:
            return False
        if self.date_field == "annotation":
            if self.since is not None and final.created_at < self.since:
                return False
            if self.until is not None and final.created_at >= self.until:
                return False
        return True


def parse_options(format_options: Mapping[str, tuple[Any, ...]], options: Mapping[str, Any]) -> dict[str, Any]:
    """``images`` (none, copy, link, url) plus the format's own options, defaults filled in.

    An option's allowed values are names, or booleans (``(False, True)``; a format
    whose answer is fixed allows one value, e.g. JSONL's ``include_rejected`` is
    always true). The first allowed value is the default.
    """
    if not isinstance(options, Mapping):
        raise InvalidExportRequest("options", "must be an object")
    allowed = {"images": IMAGE_MODES, **format_options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidExportRequest("options", f"option(s) {', '.join(unknown)} do not apply to this format; expected {', '.join(allowed)}")
    cleaned = {}
    for name, choices in allowed.items():
        raw = options.get(name)
        if isinstance(choices[0], bool):
            value = choices[0] if raw in (None, "") else _flag(raw, name)
            if value not in choices:
                raise InvalidExportRequest(name, f"is always {str(choices[0]).lower()} for this format")
        else:
            value = raw or choices[0]
            if value not in choices:
                raise InvalidExportRequest(name, f"must be one of {', '.join(choices)}, got {value!r}")
        cleaned[name] = value
    return cleaned
