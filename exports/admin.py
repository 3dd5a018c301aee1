from django.contrib import admin

from exports.models import ExportSnapshot


@admin.register(ExportSnapshot)
class ExportSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "version", "format", "status", "done", "total", "created_at"]
    readonly_fields = [f.name for f in ExportSnapshot._meta.fields]
