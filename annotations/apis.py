"""REST API for datasets, images and annotation versions.

Reads are open to every role; which annotations a user reads is
:func:`annotations.selectors.visible_annotations`: a reviewer never sees another
person's answer, and nobody sees other people's answers on an image they hold or
may still be given a review slot on (independent reviews).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers

from annotations import selectors
from annotations.api_components import AnnotationContentSerializer, CriticJSON
from annotations.filters import ImageFilter
from annotations.models import Annotation, AnnotationKind, Dataset, Image
from annotations.pagination import CursorPage
from annotations.roles import HasRole
from annotations.services import dataset_check_taxonomy_change, dataset_taxonomy_spec
from annotations.text_policy import CheckedModelSerializer
from core.vocabulary import ADMIN, BUILTIN_TAXONOMIES, USER_ROLES


@extend_schema_field({
    "oneOf": [
        {"type": "string", "enum": list(BUILTIN_TAXONOMIES)},
        {"type": "object", "required": ["name", "labels"], "properties": {
            "name": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
            "keys": {"type": "array", "items": {"type": "string"}},
            "positive": {"type": "array", "items": {"type": "string"}},
            "negative": {"type": "array", "items": {"type": "string"}},
            "synonyms": {"type": "object", "additionalProperties": {"type": "string"}}}},
    ],
})
class TaxonomyField(serializers.JSONField):
    """A taxonomy: a built-in name (``"mikels"``, ``"ekman"``) or an object (docs/taxonomies.md);
    always read back as the full object."""

    def to_internal_value(self, data):
        return dataset_taxonomy_spec(super().to_internal_value(data))


class DatasetSerializer(CheckedModelSerializer):
    """A dataset and its review settings. The bounds of the settings are the model's field
    validators, the same values as its database constraints (``annotations.models``).
    ``taxonomy`` is chosen at creation (default Mikels'); a change once labels exist is refused."""

    taxonomy = TaxonomyField(required=False, help_text='"mikels" (default), "ekman" or a custom taxonomy object.')

    class Meta:
        model = Dataset
        fields = ["id", "slug", "name", "description", "reviews_per_item", "overlap_fraction",
                  "lease_minutes", "auto_accept_threshold", "require_all_checked", "audit_fraction",
                  "taxonomy", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_taxonomy(self, value: dict) -> dict:
        if self.instance is not None:
            dataset_check_taxonomy_change(dataset=self.instance, spec=value)
        return value



class ImageSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "dataset", "original_name", "width", "height", "source", "status", "label",
                  "confidence", "agreement", "priority", "sha256", "url", "thumbnail_url", "created_at", "updated_at"]

    def get_url(self, obj: Image) -> str:
        return reverse("image-file", args=[obj.pk])

    def get_thumbnail_url(self, obj: Image) -> str:
        return reverse("image-thumbnail", args=[obj.pk])


class AnnotationSerializer(serializers.ModelSerializer):
    """An annotation version; ``content`` is the EmoVerse JSONL annotation object."""

    content = serializers.SerializerMethodField()
    critic = CriticJSON(allow_null=True, read_only=True, help_text="The critic's verdicts per element and label, with reasoning.")

    class Meta:
        model = Annotation
        fields = ["id", "image", "version", "parent", "kind", "author_name", "is_current", "decision",
                  "decision_reason", "ces_raw_distribution", "prompt_version", "pipeline_version", "critic",
                  "extra", "created_at", "content"]

    @extend_schema_field(AnnotationContentSerializer)
    def get_content(self, obj: Annotation) -> dict:
        return selectors.annotation_to_dict(obj)


class RoleAPI:
    permission_classes = [HasRole]
    required_roles = USER_ROLES


class DatasetListAPI(RoleAPI, generics.ListCreateAPIView):
    """Datasets. Every role reads; admins create."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.all()
    pagination_class = None

    def get_permissions(self):
        self.required_roles = (ADMIN,) if self.request.method == "POST" else USER_ROLES
        return super().get_permissions()

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)


class DatasetDetailAPI(RoleAPI, generics.RetrieveUpdateAPIView):
    """One dataset. Every role reads; admins change review settings."""

    serializer_class = DatasetSerializer
    queryset = Dataset.objects.all()
    lookup_field = "slug"

    def get_permissions(self):
        self.required_roles = USER_ROLES if self.request.method in ("GET", "HEAD", "OPTIONS") else (ADMIN,)
        return super().get_permissions()


class ImageListAPI(RoleAPI, generics.ListAPIView):
    """Images, filterable by dataset, status, source, label, creation time and agreement."""

    serializer_class = ImageSerializer
    queryset = Image.objects.select_related("dataset")
    filterset_class = ImageFilter
    pagination_class = CursorPage


class ImageDetailAPI(RoleAPI, generics.RetrieveAPIView):
    serializer_class = ImageSerializer
    queryset = Image.objects.select_related("dataset")


class AnnotationFilterMixin:
    class FilterSerializer(serializers.Serializer):
        """The query parameters that need checking; a bad one is a 400 naming it."""

        image = serializers.IntegerField(
            required=False, min_value=1, max_value=2**63 - 1, help_text="Image id: a positive integer.",
            error_messages={key: "Must be an image id (a positive integer)." for key in ("invalid", "min_value", "max_value")},
        )

    def annotation_queryset(self) -> QuerySet[Annotation]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Annotation.objects.none()
        queryset = selectors.visible_annotations(self.request.user)
        params = self.request.query_params
        checked = self.FilterSerializer(data={k: params[k] for k in ("image",) if params.get(k)})
        checked.is_valid(raise_exception=True)
        if "image" in checked.validated_data:
            queryset = queryset.filter(image_id=checked.validated_data["image"])
        if params.get("dataset"):
            queryset = queryset.filter(image__dataset__slug=params["dataset"])
        if params.get("kind"):
            queryset = queryset.filter(kind=params["kind"])
        if params.get("author"):
            queryset = queryset.filter(author_name=params["author"])
        if params.get("current") in ("1", "true"):
            queryset = queryset.filter(is_current=True)
        return selectors.annotations_with_elements(queryset)


@extend_schema(description="Annotation versions, filtered by image, dataset, kind, author and current.", parameters=[
    OpenApiParameter("image", int, description="Image id: a positive integer."),
    OpenApiParameter("dataset", str, description="Dataset slug."),
    OpenApiParameter("kind", str, enum=AnnotationKind.values),
    OpenApiParameter("author", str, description="Model name, or the username of the person."),
    OpenApiParameter("current", str, enum=["1", "true"], description="Only the current version of each author's annotation."),
])
class AnnotationListAPI(RoleAPI, AnnotationFilterMixin, generics.ListAPIView):
    serializer_class = AnnotationSerializer
    pagination_class = CursorPage

    def get_queryset(self):
        return self.annotation_queryset()


class AnnotationDetailAPI(RoleAPI, AnnotationFilterMixin, generics.RetrieveAPIView):
    serializer_class = AnnotationSerializer

    def get_queryset(self):
        return self.annotation_queryset()


@extend_schema(description="Every version of every annotation of one image, oldest first.")
class ImageVersionsAPI(RoleAPI, generics.ListAPIView):
    serializer_class = AnnotationSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Annotation.objects.none()
        queryset = selectors.visible_annotations(self.request.user).filter(image_id=self.kwargs["pk"]).order_by("version")
        return selectors.annotations_with_elements(queryset)
