"""REST API of QA pairs, assessment scales and ratings (docs/qa.md, "API").

Roles: every role reads a dataset's configuration; admins configure it (categories,
dimensions, scales) and add pairs by hand; researchers, adjudicators and admins read pairs
(reviewers work on them through the review workflow, which keeps reviews independent);
raters rate and read their own ratings only (their ratings stay blind to one another);
researchers and admins read every rating and the aggregates.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.api_schema import NOT_FOUND
from annotations.models import Dataset, Image
from annotations.pagination import CursorPage
from annotations.roles import HasRole, has_role
from annotations.text_policy import CheckedModelSerializer
from core.text import INT64_MAX
from core.vocabulary import ADJUDICATOR, ADMIN, RATER, RESEARCHER, USER_ROLES
from qa import selectors, services
from qa.defaults import QUESTION_TYPES
from qa.errors import InvalidPair
from qa.filters import QAPairFilter, RatingFilter
from qa.models import AssessmentScale, AuthorKind, QACategory, QADimension, QAPair, Rating
from qa.validation import check_rating_value, validate_pair

PAIR_READERS = (RESEARCHER, ADJUDICATOR, ADMIN)
RATING_READERS = (RESEARCHER, ADMIN)
ANCHOR_LIMIT = 20


class RoleAPI:
    permission_classes = [HasRole]
    required_roles = USER_ROLES
    read_roles: tuple[str, ...] = USER_ROLES
    write_roles: tuple[str, ...] = (ADMIN,)

    def get_permissions(self):
        reading = self.request.method in ("GET", "HEAD", "OPTIONS")
        self.required_roles = self.read_roles if reading else self.write_roles
        return super().get_permissions()


# --- configuration ---------------------------------------------------------------------------


class AxisSerializer(CheckedModelSerializer):
    question_types = serializers.ListField(
        child=serializers.ChoiceField(choices=QUESTION_TYPES),
        min_length=1,
        max_length=len(QUESTION_TYPES),
        help_text="Allowed question types.",
    )

    class Meta:
        fields = ["id", "key", "name", "description", "question_types", "position", "active"]
        read_only_fields = ["id"]

    def validate_question_types(self, value: list[str]) -> list[str]:
        return [t for t in QUESTION_TYPES if t in value]


class CategorySerializer(AxisSerializer):
    class Meta(AxisSerializer.Meta):
        model = QACategory


class DimensionSerializer(AxisSerializer):
    class Meta(AxisSerializer.Meta):
        model = QADimension


class ScaleSerializer(CheckedModelSerializer):
    anchors = serializers.ListField(
        child=serializers.ListField(min_length=2, max_length=2),
        max_length=ANCHOR_LIMIT,
        required=False,
        help_text='[[value, "label"], ...]: each value within the range, on a step.',
    )

    class Meta:
        model = AssessmentScale
        fields = [
            "id",
            "key",
            "name",
            "description",
            "kind",
            "emotion",
            "min_value",
            "max_value",
            "step",
            "anchors",
            "position",
            "active",
        ]
        read_only_fields = ["id"]

    def validate(self, attrs: dict) -> dict:
        merged = {f: attrs.get(f, getattr(self.instance, f, None)) for f in ("min_value", "max_value", "step")}
        low, high, step = merged["min_value"], merged["max_value"], merged["step"] or 1.0
        if low is None or high is None or not low < high:
            raise serializers.ValidationError({"max_value": "must be greater than min_value"})
        if step <= 0 or step > high - low:
            raise serializers.ValidationError({"step": "must be positive and at most the range"})
        anchors = []
        for i, (value, label) in enumerate(attrs.get("anchors", getattr(self.instance, "anchors", None) or [])):
            try:
                check_rating_value(value, minimum=low, maximum=high, step=step)
            except InvalidPair as exc:
                raise serializers.ValidationError({"anchors": {i: exc.message}}) from None
            if not isinstance(label, str) or not label.strip() or len(label) > 100:
                raise serializers.ValidationError({"anchors": {i: "a label of 1 to 100 characters"}})
            anchors.append([value, label.strip()])
        if "anchors" in attrs:
            attrs["anchors"] = anchors
        return attrs


class _DatasetConfigMixin(RoleAPI):
    """Lists and creates one kind of configuration entry of the dataset in the URL."""

    pagination_class = None
    lookup_field = "key"

    def dataset(self) -> Dataset:
        return get_object_or_404(Dataset, slug=self.kwargs["slug"])

    def get_queryset(self) -> QuerySet:
        return self.serializer_class.Meta.model.objects.filter(dataset__slug=self.kwargs["slug"])

    def perform_create(self, serializer):
        self._save(serializer, dataset=self.dataset())

    def perform_update(self, serializer):
        self._save(serializer)

    def _save(self, serializer, **extra) -> None:
        """Save; a key the dataset already uses is a 400 on ``key``, also when two requests race."""
        model = self.serializer_class.Meta.model
        key = serializer.validated_data.get("key")
        taken = model.objects.filter(dataset__slug=self.kwargs["slug"], key=key)
        if serializer.instance is not None:
            taken = taken.exclude(pk=serializer.instance.pk)
        if key is not None and taken.exists():
            raise serializers.ValidationError({"key": f"the key {key!r} is already used in this dataset"})
        try:
            with transaction.atomic():
                serializer.save(**extra)
        except IntegrityError:
            raise serializers.ValidationError({"key": f"the key {key!r} is already used in this dataset"}) from None


class CategoryListAPI(_DatasetConfigMixin, generics.ListCreateAPIView):
    """A dataset's QA task categories (every role reads; admins add)."""

    serializer_class = CategorySerializer


class CategoryDetailAPI(_DatasetConfigMixin, generics.RetrieveUpdateAPIView):
    """One task category (admins change it; deactivate instead of deleting)."""

    serializer_class = CategorySerializer


class DimensionListAPI(_DatasetConfigMixin, generics.ListCreateAPIView):
    """A dataset's QA analysis dimensions (every role reads; admins add)."""

    serializer_class = DimensionSerializer


class DimensionDetailAPI(_DatasetConfigMixin, generics.RetrieveUpdateAPIView):
    serializer_class = DimensionSerializer


class ScaleListAPI(_DatasetConfigMixin, generics.ListCreateAPIView):
    """A dataset's assessment scales (every role reads; admins add)."""

    serializer_class = ScaleSerializer


class ScaleDetailAPI(_DatasetConfigMixin, generics.RetrieveUpdateAPIView):
    serializer_class = ScaleSerializer


# --- QA pairs ---------------------------------------------------------------------------------


class QAPairSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    category = serializers.SlugRelatedField(slug_field="key", read_only=True)
    dimension = serializers.SlugRelatedField(slug_field="key", read_only=True)
    elements = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = QAPair
        fields = [
            "id",
            "dataset",
            "image",
            "key",
            "version",
            "parent",
            "is_current",
            "elements",
            "category",
            "dimension",
            "question_type",
            "question",
            "options",
            "answer_index",
            "answer",
            "rationale",
            "status",
            "reject_reason",
            "review_note",
            "priority",
            "critic_answer",
            "critic_agrees",
            "author_kind",
            "author_name",
            "model_name",
            "prompt_version",
            "generation",
            "import_run",
            "created_at",
        ]


class QAPairCreateSerializer(serializers.Serializer):
    image = serializers.IntegerField(min_value=1, max_value=INT64_MAX)
    category = serializers.CharField(max_length=50)
    dimension = serializers.CharField(max_length=50)
    type = serializers.ChoiceField(choices=QUESTION_TYPES)
    question = serializers.CharField(max_length=2000)
    options = serializers.ListField(
        child=serializers.CharField(max_length=500, allow_blank=True), required=False, allow_null=True, max_length=8
    )
    answer = serializers.JSONField(
        help_text="multiple choice: the correct option's index; yes_no: yes or no; open: the answer text"
    )
    rationale = serializers.CharField(max_length=5000, required=False, allow_blank=True)


class QAPairListAPI(RoleAPI, generics.ListCreateAPIView):
    """Current QA pairs, filterable (researchers, adjudicators, admins); admins add a pair by hand."""

    read_roles = PAIR_READERS
    serializer_class = QAPairSerializer
    filterset_class = QAPairFilter
    pagination_class = CursorPage

    def get_queryset(self) -> QuerySet[QAPair]:
        return (
            QAPair.objects.filter(is_current=True)
            .select_related("dataset", "category", "dimension")
            .prefetch_related("elements")
        )

    @extend_schema(request=QAPairCreateSerializer, responses={201: QAPairSerializer, 404: NOT_FOUND})
    def post(self, request, *args, **kwargs):
        data = QAPairCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        image = get_object_or_404(Image, pk=values.pop("image"))
        services.qa_config_install_defaults(dataset=image.dataset)
        axes = selectors.qa_axes(dataset_id=image.dataset_id)
        checked = validate_pair(values, categories=axes.categories, dimensions=axes.dimensions)
        pair = services.qa_pair_create(
            image=image,
            values=checked,
            author_kind=AuthorKind.HUMAN,
            author_name=request.user.get_username(),
            author_user=request.user,
        )
        return Response(QAPairSerializer(pair).data, status=201)


class QAPairDetailAPI(RoleAPI, generics.RetrieveAPIView):
    """One version of a pair (any version: follow ``parent`` for the history)."""

    read_roles = PAIR_READERS
    serializer_class = QAPairSerializer
    queryset = QAPair.objects.select_related("dataset", "category", "dimension").prefetch_related("elements")


class QAPairVersionsAPI(RoleAPI, generics.ListAPIView):
    """Every version of the pair with this ``key``, oldest first."""

    read_roles = PAIR_READERS
    serializer_class = QAPairSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[QAPair]:
        return (
            QAPair.objects.filter(key=self.kwargs["key"])
            .order_by("version")
            .select_related("dataset", "category", "dimension")
            .prefetch_related("elements")
        )


# --- ratings ----------------------------------------------------------------------------------


class RatingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rating
        fields = ["id", "image", "scale", "rater_kind", "rater_name", "value", "blind", "created_at"]
        read_only_fields = ["id", "rater_kind", "rater_name", "created_at"]


class RatingListAPI(RoleAPI, generics.ListCreateAPIView):
    """Ratings. A rater creates their own and reads only their own; researchers and admins read
    every rating (filter by dataset, image, scale, rater kind, blind)."""

    read_roles = (RATER, *RATING_READERS)
    write_roles = (RATER,)
    serializer_class = RatingSerializer
    filterset_class = RatingFilter
    pagination_class = CursorPage

    def get_queryset(self) -> QuerySet[Rating]:
        ratings = Rating.objects.all()
        if not has_role(self.request.user, *RATING_READERS):
            ratings = ratings.filter(rater_user=self.request.user)
        return ratings

    def post(self, request, *args, **kwargs):
        data = RatingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        rating = services.rating_create(
            image=values["image"],
            scale=values["scale"],
            value=values["value"],
            user=request.user,
            blind=values.get("blind", False),
        )
        return Response(RatingSerializer(rating).data, status=201)


class RatingAggregateSerializer(serializers.Serializer):
    image = serializers.IntegerField()
    scale = serializers.IntegerField()
    mean = serializers.FloatField()
    sd = serializers.FloatField(allow_null=True, help_text="Sample standard deviation; null below two ratings.")
    count = serializers.IntegerField()
    ci95 = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="95 % confidence interval of the mean (Student's t); null below two.",
    )


class RatingAggregatesAPI(RoleAPI, APIView):
    """Per image and scale of a dataset: mean, sd, count and 95 % interval of the people's ratings
    (``rater_kind=model`` for the models'). Query: ``dataset`` (slug, required), ``scale`` (key),
    ``image`` (id)."""

    read_roles = RATING_READERS

    class Query(serializers.Serializer):
        dataset = serializers.SlugField()
        scale = serializers.SlugField(required=False)
        image = serializers.IntegerField(required=False, min_value=1, max_value=INT64_MAX)
        rater_kind = serializers.ChoiceField(choices=["human", "model"], default="human")

    @extend_schema(parameters=[Query], responses={200: RatingAggregateSerializer(many=True), 404: NOT_FOUND})
    def get(self, request):
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        dataset = get_object_or_404(Dataset, slug=q["dataset"])
        scale = get_object_or_404(AssessmentScale, dataset=dataset, key=q["scale"]) if q.get("scale") else None
        rows = selectors.rating_aggregates(
            dataset_id=dataset.pk,
            scale=scale,
            rater_kind=q["rater_kind"],
            image_ids=[q["image"]] if q.get("image") else None,
        )
        return Response([row.as_dict() for row in rows])
