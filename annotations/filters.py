"""Image filters shared by the dataset page and the API (django-filter)."""

import django_filters

from annotations.models import EMOTION_CHOICES, Image, ImageSource, ImageStatus
from annotations.text_policy import CheckedDateTimeFilter


class ImageFilter(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__slug", label="Dataset (slug)")
    status = django_filters.ChoiceFilter(choices=ImageStatus.choices, empty_label="any status")
    source = django_filters.ChoiceFilter(choices=ImageSource.choices, empty_label="any source")
    label = django_filters.ChoiceFilter(choices=EMOTION_CHOICES, empty_label="any label")
    created_after = CheckedDateTimeFilter(field_name="created_at", lookup_expr="gte", param="created_after")
    created_before = CheckedDateTimeFilter(field_name="created_at", lookup_expr="lt", param="created_before")
    min_agreement = django_filters.NumberFilter(field_name="agreement", lookup_expr="gte")

    class Meta:
        model = Image
        fields = ["dataset", "status", "source", "label"]
