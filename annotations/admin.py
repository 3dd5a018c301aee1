from django.contrib import admin

from annotations.models import Annotation, Dataset, Image, ImportRun
from annotations.text_policy import CheckedModelForm


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    form = CheckedModelForm
    list_display = ["slug", "name", "reviews_per_item", "overlap_fraction", "lease_minutes", "auto_accept_threshold",
                    "require_all_checked", "audit_fraction"]
    list_filter = ["require_all_checked"]
    search_fields = ["slug", "name"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    form = CheckedModelForm
    list_display = ["id", "dataset", "original_name", "source", "status", "label", "priority"]
    list_filter = ["dataset", "status", "source", "label"]
    search_fields = ["original_name", "sha256"]
    readonly_fields = ["sha256", "width", "height", "created_at", "updated_at"]
    list_select_related = ["dataset"]
    show_full_result_count = False


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    """Read-only: annotations are versioned through the services, never edited in place."""

    list_display = ["id", "image", "version", "kind", "author_name", "is_current", "decision", "ces_label"]
    list_filter = ["kind", "is_current", "decision", "ces_label"]
    search_fields = ["author_name"]
    raw_id_fields = ["image", "parent", "author_user", "import_run"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "file_name", "approved", "run_by", "imported", "duplicates", "failed", "started_at"]
    readonly_fields = [f.name for f in ImportRun._meta.fields]
