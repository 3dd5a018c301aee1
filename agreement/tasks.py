"""Celery tasks of the agreement app: reports computed in a worker (``io`` queue)."""

from __future__ import annotations

import time

from celery import shared_task
from django.core.cache import cache

from agreement.report_cache import (
    LOCK_SECONDS,
    ReportState,
    cached_agreement_report,
    computes_in_background,
    report_compute,
    report_key,
)
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters
from annotations.models import Dataset


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=30 * 60, time_limit=35 * 60)
def compute_agreement_report(key: str, dataset_id: int, filters: dict) -> None:
    """Compute one report into the cache under ``key``. A dataset deleted meanwhile: nothing to do."""
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        cache.delete(f"{key}:computing")
        return
    report_compute(key=key, dataset=dataset, filters=ReportFilters.from_dict(filters), options=ReportOptions.from_settings())


def report_or_start(*, dataset: Dataset, filters: ReportFilters, start: bool = True) -> ReportState:
    """The cached report, or its computation started in a worker (once) and its state.

    Computes in the request when :func:`computes_in_background` is False. A failed
    computation is reported once (``failed``); the next call starts it again. With
    ``start=False`` (polling) nothing is started or cleared.
    """
    options = ReportOptions.from_settings()
    if not computes_in_background():
        report = cached_agreement_report(dataset=dataset, filters=filters, options=options)
        return ReportState(status="ready", report=report)
    key = report_key(dataset=dataset, filters=filters, options=options)
    report = cache.get(key)
    if report is not None:
        return ReportState(status="ready", report=report)
    error = cache.get(f"{key}:error")
    if error is not None:
        if start:
            cache.delete(f"{key}:error")
        return ReportState(status="failed", error=error)
    started = cache.get(f"{key}:computing")
    if started is None and start:
        started = time.time()
        if cache.add(f"{key}:computing", started, LOCK_SECONDS):
            # Nothing to commit first: the worker reads what is already in the database.
            compute_agreement_report.delay(key, dataset.pk, filters.as_dict())
        else:
            started = cache.get(f"{key}:computing", started)
    return ReportState(status="idle") if started is None else ReportState(status="computing", started=started)
