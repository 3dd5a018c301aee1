"""Read-only admin views of pipeline runs and calibration versions (changes go through services)."""

from django.contrib import admin

from ml.models import CalibrationVersion, PipelineRun, StageResult


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StageResultInline(admin.TabularInline):
    model = StageResult
    fields = ("stage", "status", "attempt", "duration_s", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "image", "pipeline_version", "status", "failed_stage", "cost_usd", "prompt_tokens", "completion_tokens", "updated_at")
    list_filter = ("status", "pipeline_version")
    search_fields = ("image__original_name", "error")
    raw_id_fields = ("image", "annotation")
    inlines = [StageResultInline]


@admin.register(CalibrationVersion)
class CalibrationVersionAdmin(ReadOnlyAdmin):
    list_display = ("model_name", "version", "temperature", "n_samples", "ece_before", "ece_after", "created_at")
    list_filter = ("model_name",)
