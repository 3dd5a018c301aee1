"""Exports page (admins): snapshots with progress, a form to start one, permission-checked downloads.

Pages only read here: a stale running snapshot is shown as interrupted (with Restart);
Celery beat marks it failed (``exports.periodic``).
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations.errors import DomainError
from annotations.roles import role_required
from core.vocabulary import ADMIN
from exports import selectors, services
from exports.downloads import file_response, snapshot_files, zip_response
from exports.filters import InvalidExportRequest
from exports.forms import ExportForm, initial_choice
from exports.models import ExportSnapshot, ExportStatus

ACTIVE = (ExportStatus.PENDING, ExportStatus.RUNNING)


def _table_context() -> dict:
    snapshots = selectors.snapshot_list()
    for snapshot in snapshots:
        snapshot.percent = int(100 * snapshot.done / snapshot.total) if snapshot.total else 0
        snapshot.files = snapshot_files(snapshot)
        snapshot.filter_text = filter_text(snapshot.filters)
        snapshot.note = selectors.interrupted_note(snapshot) if snapshot.stale else ""
    return {"snapshots": snapshots, "active": any(s.status in ACTIVE and not s.stale for s in snapshots)}


@require_GET
@role_required(ADMIN)
def export_list(request):
    if request.htmx:
        return render(request, "exports/_table.html", _table_context())
    return render(request, "exports/list.html", {"form": ExportForm(initial=initial_choice(request.GET)), **_table_context()})


@require_POST
@role_required(ADMIN)
def export_start(request):
    form = ExportForm(request.POST)
    if form.is_valid():
        try:
            snapshot = services.export_request(created_by=request.user, **form.service_arguments())
        except InvalidExportRequest as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Export {snapshot.dataset.slug} v{snapshot.version} ({snapshot.format}) started.")
            return redirect("exports:list")
    return render(request, "exports/list.html", {"form": form, **_table_context()}, status=400)


@require_POST
@role_required(ADMIN)
def export_restart(request, pk: int):
    try:
        snapshot = services.export_restart(snapshot=get_object_or_404(ExportSnapshot, pk=pk))
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Export v{snapshot.version} restarted.")
    return redirect("exports:list")


@require_GET
@role_required(ADMIN)
def export_download(request, pk: int):
    snapshot = get_object_or_404(ExportSnapshot.objects.select_related("dataset"), pk=pk)
    return zip_response(snapshot)


@require_GET
@role_required(ADMIN)
def export_file(request, pk: int, path: str):
    return file_response(get_object_or_404(ExportSnapshot, pk=pk), path)


def filter_text(filters: dict) -> str:
    """``status=approved source=emoset,web`` (empty filters left out)."""
    parts = []
    for key, value in filters.items():
        if value in (None, "", [], False) or (key == "date_field" and value == "image"):
            continue
        if key == "include_auto_accepted":
            parts.append("+ machine-accepted (auto-accepted, not human-approved)")
            continue
        parts.append(f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(parts)
