"""Exports page (admins): snapshots with progress, a form to start one, permission-checked downloads."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations import exports
from annotations.errors import DomainError, NothingToDo
from annotations.export_downloads import (
    archive_name,
    snapshot_file,
    snapshot_files,
    zip_stream,
)
from annotations.export_forms import ExportForm, initial_choice
from annotations.models import ExportSnapshot, ExportStatus
from annotations.roles import role_required
from annotations.tasks import export_enqueue
from core.vocabulary import ADMIN

ACTIVE = (ExportStatus.PENDING, ExportStatus.RUNNING)


def _table_context() -> dict:
    exports.export_fail_stale()
    snapshots = list(ExportSnapshot.objects.select_related("dataset", "created_by").order_by("-created_at", "-id")[:200])
    for snapshot in snapshots:
        snapshot.percent = int(100 * snapshot.done / snapshot.total) if snapshot.total else 0
        snapshot.files = snapshot_files(snapshot)
        snapshot.filter_text = filter_text(snapshot.filters)
    return {"snapshots": snapshots, "active": any(s.status in ACTIVE for s in snapshots)}


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
            snapshot = exports.export_create(created_by=request.user, **form.service_arguments())
        except exports.InvalidExportRequest as exc:
            form.add_error(None, str(exc))
        else:
            export_enqueue(snapshot)
            messages.success(request, f"Export {snapshot.dataset.slug} v{snapshot.version} ({snapshot.format}) started.")
            return redirect("exports:list")
    return render(request, "exports/list.html", {"form": form, **_table_context()}, status=400)


@require_POST
@role_required(ADMIN)
def export_restart(request, pk: int):
    try:
        snapshot = exports.export_restart(snapshot=get_object_or_404(ExportSnapshot, pk=pk))
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        export_enqueue(snapshot)
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


def zip_response(snapshot: ExportSnapshot) -> StreamingHttpResponse:
    try:
        stream = zip_stream(snapshot)
        first = next(stream)  # checks the snapshot before the response starts
    except NothingToDo as exc:
        raise Http404(str(exc)) from exc
    response = StreamingHttpResponse(_prepend(first, stream), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{archive_name(snapshot)}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def file_response(snapshot: ExportSnapshot, path: str) -> FileResponse:
    try:
        resolved = snapshot_file(snapshot, path)
    except NothingToDo as exc:
        raise Http404(str(exc)) from exc
    response = FileResponse(open(resolved, "rb"), as_attachment=True, filename=resolved.name)  # noqa: SIM115 - closed by Django
    response["X-Content-Type-Options"] = "nosniff"
    return response


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


def _prepend(first: bytes, rest):
    yield first
    yield from rest
