from django import forms
from django.contrib import admin

from annotations.errors import InvalidAnnotation
from annotations.models import Annotation, Dataset, Image, ImportRun
from annotations.services import dataset_check_taxonomy_change, dataset_taxonomy_spec
from annotations.text_policy import CheckedModelForm
from core.vocabulary import BUILTIN_TAXONOMIES

CUSTOM = "custom"


class DatasetForm(CheckedModelForm):
    """The dataset form with the taxonomy as a choice: a built-in one, or a custom one given
    as JSON (docs/taxonomies.md). A change once the dataset has labels is refused."""

    taxonomy_choice = forms.ChoiceField(
        label="Emotion taxonomy",
        choices=[("mikels", "Mikels' 8 (default)"), ("ekman", "Ekman's 6"), (CUSTOM, "Custom (JSON below)")],
        initial="mikels", required=False,
        help_text="Left out: the dataset keeps its taxonomy (a new one gets Mikels' 8).",
    )
    custom_taxonomy = forms.JSONField(
        required=False, label="Custom taxonomy",
        help_text='{"name": "...", "labels": [...], "keys": [...], "positive": [...], "negative": [...], "synonyms": {...}}; '
                  "keys, polarity and synonyms are optional.",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
    )

    class Meta:
        model = Dataset
        exclude = ["taxonomy"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            taxonomy = self.instance.get_taxonomy()
            builtin = BUILTIN_TAXONOMIES.get(taxonomy.name) == taxonomy
            self.initial["taxonomy_choice"] = taxonomy.name if builtin else CUSTOM
            if not builtin:
                self.initial["custom_taxonomy"] = self.instance.taxonomy

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("taxonomy_choice")
        if not choice:  # a post without the field (a script): nothing to change
            return cleaned
        given = cleaned.get("custom_taxonomy") if choice == CUSTOM else choice
        field = "custom_taxonomy" if choice == CUSTOM else "taxonomy_choice"
        if given is None:
            self.add_error(field, "Give the custom taxonomy as JSON.")
            return cleaned
        try:
            spec = dataset_taxonomy_spec(given)
            dataset_check_taxonomy_change(dataset=self.instance, spec=spec)
        except InvalidAnnotation as exc:
            self.add_error(field, str(exc))
            return cleaned
        self.instance.taxonomy = spec
        return cleaned


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    form = DatasetForm
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
