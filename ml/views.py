"""Pipeline pages: progress per dataset (htmx polling), Pre-annotate and Retry buttons (admins).
Recalibrate (admins), posted from the calibration page (``agreement.views.calibration_page``)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations.models import Dataset
from annotations.roles import role_required
from core.vocabulary import ADMIN
from ml import calibration_fits, recalibration, selectors, services
from ml.config import get_registry
from ml.forms import PreannotateForm
from ml.stages.registry import CONFIG_HINT
from ml.stages.types import BackendNotConfigured


def _context(dataset: Dataset) -> dict:
    registry = get_registry()
    problems = registry.check()
    version = registry.pipeline_version if not problems else registry.config.get("pipeline_version") or "v1"
    progress = selectors.dataset_progress(
        dataset=dataset, pipeline_version=version, stage_names=services.pipeline_stage_names(registry)
    )
    stuck = services.stale_runs(pipeline_version=version).filter(image__dataset=dataset).count()
    # The page says once where the configuration goes; each problem says what is missing.
    shown = [p.removesuffix(CONFIG_HINT).rstrip() for p in problems]
    return {
        "dataset": dataset, "progress": progress, "problems": shown, "form": PreannotateForm(),
        "stuck": stuck,
        # What the configuration wants every admin to know (the pipeline demo: canned answers, random weights).
        "notice": str(registry.config.get("notice") or ""),
    }


@require_GET
@role_required(ADMIN)
def pipeline_page(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    template = "ml/_progress.html" if request.htmx else "ml/pipeline.html"
    return render(request, template, _context(dataset))


@require_POST
@role_required(ADMIN)
def pipeline_start(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    form = PreannotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not started: {form.errors.as_text()}")
        return redirect("ml:pipeline", slug=slug)
    try:
        result = services.enqueue_preannotation(dataset=dataset, limit=form.cleaned_data["limit"], force=form.cleaned_data["force"])
    except BackendNotConfigured as exc:
        messages.error(request, str(exc))
    else:
        stuck = f" {result.stale} of them were stuck (no worker held them, no message of theirs in the broker)." if result.stale else ""
        messages.success(
            request,
            f"Queued {result.enqueued} image(s) for pipeline {result.pipeline_version}; {result.skipped} skipped.{stuck}",
        )
    return redirect("ml:pipeline", slug=slug)


@require_POST
@role_required(ADMIN)
def pipeline_retry(request, slug: str):
    dataset = get_object_or_404(Dataset, slug=slug)
    try:
        result = services.retry_failed(dataset=dataset)
    except BackendNotConfigured as exc:
        messages.error(request, str(exc))
    else:
        stuck = f", and {result.stale} stuck (no worker held them, no message of theirs in the broker)" if result.stale else ""
        messages.success(request, f"Sent {result.failed} failed image(s) again{stuck}.")
    return redirect("ml:pipeline", slug=slug)


@require_POST
@role_required(ADMIN)
def recalibrate_view(request):
    dataset = get_object_or_404(Dataset, slug=request.POST["dataset"]) if request.POST.get("dataset") else None
    try:
        min_samples = int(request.POST.get("min_samples") or calibration_fits.default_min_samples())
        result = recalibration.recalibrate(dataset=dataset, min_samples=min_samples, created_by=request.user)
    except ValueError as exc:
        messages.error(request, f"Recalibration refused: {exc}")
        return redirect("agreement-calibration")
    for version in result.stored:
        messages.success(request, f"{version.model_name}: version {version.version}, T = {version.temperature:.3f} "
                                  f"(fitted on {version.n_samples} audited answers; held-out ECE "
                                  f"{version.ece_before:.3f} → {version.ece_after:.3f} on "
                                  f"{version.reliability.get('n_held_out')})")
    if result.stored:
        messages.info(request, f"{result.reprioritised} image(s) in review re-prioritised; "
                               f"{len(result.sent_back)} auto-accepted image(s) sent back to review.")
    for model, reason in result.skipped.items():
        messages.info(request, f"{model}: not recalibrated — {reason}")
    if not result.stored and not result.skipped:
        messages.info(request, "No model answer has a human reference label yet: nothing to calibrate.")
    return redirect("agreement-calibration")
