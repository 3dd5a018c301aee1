"""Agreement reports in the cache: computed once per state of the data, in a worker when
one is there, so that a page at 219K images never waits a minute inside a web request.

A report is keyed by dataset, filters, options and :func:`selectors.data_stamp` (which
changes whenever anything the report reads changes). Pages and the API call
:func:`agreement.tasks.report_or_start`: the cached report, or the computation started
in the background (once, guarded by a lock in the cache) and a :class:`ReportState`
that says so. Background computation needs a broker and a cache shared by web and workers
(``CACHE_URL``); without either, the report is computed in the request as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache

from agreement import selectors
from agreement.report import agreement_report
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters
from annotations.models import Dataset

CACHE_SECONDS = 24 * 3600
# A computation whose worker died stops blocking new ones after this long (above the
# task's hard time limit).
LOCK_SECONDS = 40 * 60
ERROR_SECONDS = 10 * 60
PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@dataclass(frozen=True)
class ReportState:
    """``ready`` (with the ``report``), ``computing`` (since ``started``, a Unix time),
    ``failed`` (the last computation's ``error``) or ``idle`` (nothing started for the
    current state of the data)."""

    status: str
    report: dict[str, Any] | None = None
    error: str = ""
    started: float | None = None

    @property
    def started_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.started, tz=UTC) if self.started is not None else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.error:
            out["error"] = self.error
        if self.started is not None:
            out["started"] = self.started
        return out


def computes_in_background() -> bool:
    """True when a worker computes reports: a broker is configured and the cache is shared."""
    return not settings.CELERY_TASK_ALWAYS_EAGER and settings.CACHES["default"]["BACKEND"] not in PROCESS_LOCAL_CACHES


def report_key(*, dataset: Dataset, filters: ReportFilters, options: ReportOptions) -> str:
    key_data = [dataset.pk, filters.as_dict(), asdict(options), selectors.data_stamp(dataset=dataset)]
    return "agreement-report:" + hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()


def report_compute(*, key: str, dataset: Dataset, filters: ReportFilters, options: ReportOptions) -> dict[str, Any]:
    """Compute the report and store it under ``key`` (the state of the data when it was asked for)."""
    try:
        report = agreement_report(dataset=dataset, filters=filters, options=options)
    except Exception as exc:
        cache.set(f"{key}:error", f"{type(exc).__name__}: {exc}", ERROR_SECONDS)
        raise
    finally:
        cache.delete(f"{key}:computing")
    cache.set(key, report, CACHE_SECONDS)
    return report


def cached_agreement_report(*, dataset: Dataset, filters: ReportFilters | None = None,
                            options: ReportOptions | None = None) -> dict[str, Any]:
    """The report, from the cache or computed now (the ``agreement`` command, the downloads of a ready report)."""
    filters = filters or ReportFilters()
    options = options or ReportOptions.from_settings()
    key = report_key(dataset=dataset, filters=filters, options=options)
    report = cache.get(key)
    if report is None:
        report = report_compute(key=key, dataset=dataset, filters=filters, options=options)
    return report
