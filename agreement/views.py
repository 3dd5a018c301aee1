"""Researcher pages: datasets, the agreement report (with CSV/JSON downloads), model calibration
(the fits now and the stored versions; its Recalibrate button posts to ``ml.views.recalibrate_view``)."""

from __future__ import annotations

import json

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from agreement import pages, selectors
from agreement.csv_report import report_csv
from agreement.forms import ReportFilterForm
from agreement.tasks import report_or_start
from annotations.models import Dataset
from annotations.roles import role_required
from core.vocabulary import ADMIN, RESEARCHER
from ml import calibration_fits, selectors as ml_selectors


def _filter_form(request, dataset: Dataset) -> ReportFilterForm:
    form = ReportFilterForm(request.GET, reviewers=selectors.reviewer_names(dataset=dataset),
                            labels=dataset.get_taxonomy().labels)
    form.is_valid()
    return form


@require_GET
@role_required(RESEARCHER, ADMIN)
def dataset_list(request):
    return render(request, "agreement/index.html", {"datasets": selectors.report_datasets()})


@require_GET
@role_required(RESEARCHER, ADMIN)
def report_page(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    form = _filter_form(request, dataset)
    context = {"dataset": dataset, "form": form, "query": request.GET.urlencode()}
    if form.errors:
        return render(request, "agreement/report.html", context, status=400)
    state = report_or_start(dataset=dataset, filters=form.filters())
    if state.report is None:
        context["state"] = state
        return render(request, "agreement/report.html", context, status=500 if state.status == "failed" else 200)
    context.update(pages.report_context(state.report, a=request.GET.get("a"), b=request.GET.get("b")))
    return render(request, "agreement/report.html", context)


@require_GET
@role_required(RESEARCHER, ADMIN)
def report_status(request, slug: str):
    """Polled by the page while a worker computes the report; tells htmx to reload once it is not computing."""
    dataset = get_object_or_404(Dataset, slug=slug)
    form = _filter_form(request, dataset)
    if form.errors:
        return HttpResponseBadRequest(f"Invalid filters: {form.error_text()}", content_type="text/plain")
    state = report_or_start(dataset=dataset, filters=form.filters(), start=False)
    response = JsonResponse(state.as_dict())
    if state.status != "computing":
        response["HX-Refresh"] = "true"
    return response


def _download(request, slug: str, fmt: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    form = _filter_form(request, dataset)
    if form.errors:
        return HttpResponseBadRequest(f"Invalid filters: {form.error_text()}", content_type="text/plain")
    state = report_or_start(dataset=dataset, filters=form.filters())
    if state.report is None:  # the report page shows the computation and links here once ready
        query = request.GET.urlencode()
        return redirect(reverse("agreement-report", args=[dataset.slug]) + (f"?{query}" if query else ""))
    report = state.report
    if fmt == "csv":
        response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(json.dumps(report, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="agreement-{dataset.slug}.{fmt}"'
    return response


@require_GET
@role_required(RESEARCHER, ADMIN)
def report_csv_download(request, slug: str):
    return _download(request, slug, "csv")


@require_GET
@role_required(RESEARCHER, ADMIN)
def report_json_download(request, slug: str):
    return _download(request, slug, "json")


@require_GET
@role_required(RESEARCHER, ADMIN)
def calibration_page(request):
    dataset = get_object_or_404(Dataset, slug=request.GET["dataset"]) if request.GET.get("dataset") else None
    min_samples = calibration_fits.default_min_samples()
    context = {
        "dataset": dataset,
        "datasets": Dataset.objects.order_by("slug"),
        "fits": [(fit, plot, fit.refusal(min_samples)) for fit, plot in
                 pages.calibration_plots(calibration_fits.cached_model_calibrations(dataset=dataset))],
        "history": ml_selectors.calibration_history(),
        "min_samples": min_samples,
    }
    return render(request, "agreement/calibration.html", context)
