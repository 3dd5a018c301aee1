"""The form that starts an export on the Exports page (the service validates again)."""

from __future__ import annotations

from typing import Any

from django import forms

from annotations.filters import label_choices
from annotations.models import Dataset, ImageSource, ImageStatus
from exports.models import ExportFormat
from exports.writers.images import IMAGE_MODES

IMAGE_LABELS = {
    "none": "None (paths only)",
    "copy": "Copy into images/",
    "link": "Hard-link into images/ (same disk)",
    "url": "Reference by public storage URL (S3 without signing, CDN)",
}
IMAGE_CHOICES = [(mode, IMAGE_LABELS[mode]) for mode in IMAGE_MODES]


def initial_choice(params) -> dict[str, str]:
    """The dataset the page opens with: ``?dataset=<slug>`` (the dataset page's Exports
    link), else the only dataset when there is one."""
    slug = params.get("dataset")
    if slug and Dataset.objects.filter(slug=slug).exists():
        return {"dataset": slug}
    only = list(Dataset.objects.values_list("slug", flat=True)[:2])
    return {"dataset": only[0]} if len(only) == 1 else {}


class ExportForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("slug"), to_field_name="slug")
    format = forms.ChoiceField(choices=ExportFormat.choices)
    categories = forms.ChoiceField(choices=[("emotion", "COCO: one category per emotion"), ("role", "COCO: one category per B-A-S role")],
                                   required=False, initial="emotion")
    status = forms.MultipleChoiceField(choices=ImageStatus.choices, initial=[ImageStatus.APPROVED], required=False,
                                       help_text="Default: approved only.")
    source = forms.MultipleChoiceField(choices=ImageSource.choices, required=False)
    label = forms.MultipleChoiceField(required=False, help_text="Labels of the dataset's taxonomy.")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Through this day.")
    date_field = forms.ChoiceField(choices=[("image", "image added"), ("annotation", "final annotation made")], initial="image")
    min_agreement = forms.FloatField(required=False, min_value=0, max_value=1)
    images = forms.ChoiceField(choices=IMAGE_CHOICES, initial="none")
    include_auto_accepted = forms.BooleanField(
        required=False, label="Include auto-accepted items (machine-accepted, not human-approved)",
        help_text="Also export items the pipeline auto-accepted that no person reviewed "
                  "(machine-accepted, not human-approved; counted apart in the manifest).",
    )
    include_rejected = forms.BooleanField(
        required=False, label="Include rejected elements (COCO, Parquet)",
        help_text="Also write the elements a reviewer or adjudicator rejected, marked with their status. "
                  "Left out by default (counted in the manifest); JSONL always keeps them.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Every dataset's labels; the export service checks them against the chosen dataset's taxonomy.
        self.fields["label"].choices = label_choices(Dataset.objects.all())

    def service_arguments(self) -> dict[str, Any]:
        """``export_create`` keyword arguments from the cleaned data."""
        data = self.cleaned_data
        filters = {key: data[key] for key in ("status", "source", "label", "date_field", "min_agreement", "include_auto_accepted")}
        filters["since"] = data["since"].isoformat() if data["since"] else None
        filters["until"] = data["until"].isoformat() if data["until"] else None
        options = {"images": data["images"]}
        if data["include_rejected"]:
            options["include_rejected"] = True
        if data["format"] == ExportFormat.COCO:
            options["categories"] = data["categories"] or "emotion"
        return {"dataset": data["dataset"], "export_format": data["format"], "filters": filters, "options": options}
