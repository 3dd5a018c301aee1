"""Filters of the QA APIs (django-filter)."""

import django_filters

from core.text import INT64_MAX
from qa.defaults import QUESTION_TYPES
from qa.models import AuthorKind, QAPair, QAStatus, Rating, RaterKind


class QAPairFilter(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__slug", label="Dataset (slug)")
    image = django_filters.NumberFilter(field_name="image_id", min_value=1, max_value=INT64_MAX)
    category = django_filters.CharFilter(field_name="category__key", label="Task category (key)")
    dimension = django_filters.CharFilter(field_name="dimension__key", label="Analysis dimension (key)")
    status = django_filters.ChoiceFilter(choices=QAStatus.choices)
    question_type = django_filters.ChoiceFilter(choices=[(t, t) for t in QUESTION_TYPES])
    author_kind = django_filters.ChoiceFilter(choices=AuthorKind.choices)
    model = django_filters.CharFilter(field_name="model_name")
    critic_agrees = django_filters.BooleanFilter()

    class Meta:
        model = QAPair
        fields = ["dataset", "image", "category", "dimension", "status", "question_type"]


class RatingFilter(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="scale__dataset__slug", label="Dataset (slug)")
    image = django_filters.NumberFilter(field_name="image_id", min_value=1, max_value=INT64_MAX)
    scale = django_filters.CharFilter(field_name="scale__key", label="Scale (key)")
    rater_kind = django_filters.ChoiceFilter(choices=RaterKind.choices)
    blind = django_filters.BooleanFilter()

    class Meta:
        model = Rating
        fields = ["dataset", "image", "scale", "rater_kind", "blind"]
