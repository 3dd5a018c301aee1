"""Admins configure categories, dimensions and scales here; pairs and ratings are read-only
(they change through the services, as new versions)."""

from django.contrib import admin

from annotations.text_policy import CheckedModelForm
from qa.models import AssessmentScale, QACategory, QADimension, QAGeneration, QAImportRun, QAPair, Rating


class _AxisAdmin(admin.ModelAdmin):
    form = CheckedModelForm
    list_display = ["key", "dataset", "name", "question_types", "position", "active"]
    list_filter = ["dataset", "active"]
    search_fields = ["key", "name"]
    list_editable = ["position", "active"]


@admin.register(QACategory)
class QACategoryAdmin(_AxisAdmin):
    pass


@admin.register(QADimension)
class QADimensionAdmin(_AxisAdmin):
    pass


@admin.register(AssessmentScale)
class AssessmentScaleAdmin(admin.ModelAdmin):
    form = CheckedModelForm
    list_display = ["key", "dataset", "name", "kind", "emotion", "min_value", "max_value", "step", "active"]
    list_filter = ["dataset", "kind", "active"]
    search_fields = ["key", "name"]


class _ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(QAPair)
class QAPairAdmin(_ReadOnlyAdmin):
    list_display = ["id", "image", "key", "version", "is_current", "category", "dimension", "question_type", "status"]
    list_filter = ["dataset", "is_current", "status", "question_type", "reject_reason", "critic_agrees"]
    search_fields = ["question", "author_name", "model_name"]
    raw_id_fields = ["dataset", "image", "parent", "author_user", "generation", "import_run", "elements"]


@admin.register(Rating)
class RatingAdmin(_ReadOnlyAdmin):
    list_display = ["id", "image", "scale", "rater_kind", "rater_name", "value", "blind", "created_at"]
    list_filter = ["scale__dataset", "rater_kind", "blind"]
    raw_id_fields = ["image", "scale", "rater_user"]


@admin.register(QAGeneration)
class QAGenerationAdmin(_ReadOnlyAdmin):
    list_display = ["id", "image", "generator_version", "status", "attempt", "pairs_created", "critic_mismatches"]
    list_filter = ["status", "generator_version"]
    raw_id_fields = ["image"]


@admin.register(QAImportRun)
class QAImportRunAdmin(_ReadOnlyAdmin):
    list_display = [
        "id",
        "dataset",
        "file_name",
        "approved",
        "run_by",
        "imported",
        "duplicates",
        "failed",
        "started_at",
    ]
