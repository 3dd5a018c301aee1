from __future__ import annotations

import re

import django_filters

from annotations.models import Dataset, Image, ImageSource, ImageStatus
from annotations.text_policy import CheckedDateTimeFilter
from core.vocabulary import EMOTIONS, taxonomy_from_spec

SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")


def label_choices(datasets) -> list[tuple[str, str]]:
    """The labels of the datasets' taxonomies, in each taxonomy's order, each once (Mikels' eight when none)."""
    labels: dict[str, None] = {}
    for spec in datasets.values_list("taxonomy", flat=True):
        labels.update(dict.fromkeys(taxonomy_from_spec(spec).labels))
    return [(e, e.capitalize()) for e in (labels or dict.fromkeys(EMOTIONS))]


class ImageFilter(django_filters.FilterSet):
    """Images by dataset, status, source, label... ``label`` is one of the labels of the
    ``dataset``'s taxonomy (``dataset`` given as a keyword: a dataset page) or of any dataset's."""

    dataset = django_filters.CharFilter(field_name="dataset__slug", label="Dataset (slug)")
    status = django_filters.ChoiceFilter(choices=ImageStatus.choices, empty_label="any status")
    source = django_filters.ChoiceFilter(choices=ImageSource.choices, empty_label="any source")
    label = django_filters.ChoiceFilter(choices=[(e, e.capitalize()) for e in EMOTIONS], empty_label="any label")
    created_after = CheckedDateTimeFilter(field_name="created_at", lookup_expr="gte", param="created_after")
    created_before = CheckedDateTimeFilter(field_name="created_at", lookup_expr="lt", param="created_before")
    min_agreement = django_filters.NumberFilter(field_name="agreement", lookup_expr="gte")

    class Meta:
        model = Image
        fields = ["dataset", "status", "source", "label"]

    def __init__(self, *args, dataset: Dataset | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        slug = self.data.get("dataset") if hasattr(self.data, "get") else None
        if dataset is not None:
            datasets = Dataset.objects.filter(pk=dataset.pk)
        elif isinstance(slug, str) and SLUG.match(slug):  # anything else is the text policy's to refuse
            datasets = Dataset.objects.filter(slug=slug)
        else:
            datasets = Dataset.objects.all()
        label = self.filters["label"]
        label.extra["choices"] = label_choices(datasets)
        vars(label).pop("_field", None)  # a form field built before (from base_filters, e.g. the schema) holds Mikels' choices
