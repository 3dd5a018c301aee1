"""REST API of the review queue, adjudication and disagreement log (docs/review-api.md).

One class per operation; each declares ``required_roles`` (checked by ``HasRole``)
and calls a service or selector. Domain errors become HTTP answers in
``annotations.api_errors``; the refine errors are mapped here.
"""

from __future__ import annotations

import orjson
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.api_components import (
    AnnotationInputJSON,
    CesJSON,
    CriticJSON,
    MaskSerializer,
    TripletsJSON,
)
from annotations.api_input import validated_input
from annotations.api_json import PlainJSONNegotiation, json_answer
from annotations.api_schema import CONFLICT, NOT_FOUND, ErrorSerializer
from annotations.models import Dataset, Decision, Image
from annotations.pagination import CursorPage, NewestFirst
from annotations.roles import HasRole, has_role
from core.vocabulary import ADJUDICATOR, ADMIN, RESEARCHER, REVIEWER, ROLES, USER_ROLES
from annotations.text_policy import CheckedDateTimeField
from annotations.tokens import READ_WITH_TOKEN
from review import adjudication, queue, selectors, services, visibility
from review.errors import DraftTooLarge, RefineFailed, RefineTimeout, RefineUnavailable
from review.models import DisagreementField, DisagreementKind, ElementAction, Lease, LeaseState
from review.refine import REFINE_OFF, mask_refine
from review.services import MAX_ELEMENT_DECISIONS
from review.submit_token_read import attach_lease_read


# Annotation.version is a 32-bit column: a larger expected_version is refused (400), not sent to the database.
MAX_VERSION = 2**31 - 1


class RoleAPI(APIView):
    permission_classes = [HasRole]
    required_roles: tuple[str, ...] = ()
    content_negotiation_class = PlainJSONNegotiation


class AnnotationOutput(serializers.Serializer):
    """An annotation as the review API shows it (``review.selectors.annotation_payload``)."""

    id = serializers.IntegerField()
    version = serializers.IntegerField()
    kind = serializers.CharField()
    author_name = serializers.CharField()
    pipeline_version = serializers.CharField(allow_blank=True, help_text="The pipeline run (or import) that made it; blank for people's answers")
    decision = serializers.CharField(allow_blank=True)
    decision_reason = serializers.CharField(allow_blank=True)
    triplets = TripletsJSON()
    ces = CesJSON(allow_null=True)
    rationale = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class ReviewOutput(AnnotationOutput):
    """An independent review: the reviewer's annotation and how long they took."""

    reviewer = serializers.CharField()
    time_spent_ms = serializers.IntegerField()


class LabelDisagreement(serializers.Serializer):
    values = serializers.DictField(child=serializers.CharField(allow_null=True), help_text="Label per annotator")
    agree = serializers.BooleanField()


class PhraseDisagreement(serializers.Serializer):
    index = serializers.IntegerField(help_text="The row's triplet number (rows pair triplets by content)")
    role = serializers.ChoiceField(ROLES)
    values = serializers.DictField(child=serializers.CharField(allow_null=True), help_text="Phrase per annotator")
    agree = serializers.BooleanField()


class AnnotatorsDisagreement(serializers.Serializer):
    """Where the model annotators disagree (``review.selectors.annotators_disagreement``)."""

    label = LabelDisagreement()
    triplets = PhraseDisagreement(many=True)
    agree = serializers.BooleanField()


@extend_schema_field(AnnotatorsDisagreement(allow_null=True))
class AnnotatorsDisagreementJSON(serializers.JSONField):
    pass


class DraftSnapshot(serializers.Serializer):
    payload = serializers.JSONField(help_text="Whatever the client saved")
    saved_at = serializers.DateTimeField()


@extend_schema_field(DraftSnapshot(allow_null=True))
class DraftSnapshotJSON(serializers.JSONField):
    pass


class ElementDecision(serializers.Serializer):
    """One per-element action of a review, with the value before and after."""

    triplet_key = serializers.UUIDField()
    role = serializers.ChoiceField(ROLES)
    action = serializers.ChoiceField(ElementAction.values)
    before = serializers.JSONField(required=False, allow_null=True)
    after = serializers.JSONField(required=False, allow_null=True)
    time_ms = serializers.IntegerField(required=False, min_value=0)


@extend_schema_field(ElementDecision(many=True, max_length=MAX_ELEMENT_DECISIONS))
class ElementDecisionsField(serializers.ListField):
    pass


@extend_schema_field({"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}})
class PointsJSON(serializers.JSONField):
    pass


@extend_schema_field({"type": "array", "items": {"type": "integer", "enum": [0, 1]}})
class PointLabelsJSON(serializers.JSONField):
    pass


@extend_schema_field({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "nullable": True})
class BoxJSON(serializers.JSONField):
    pass


@extend_schema_field(MaskSerializer(allow_null=True))
class MaskJSON(serializers.JSONField):
    pass


class ImageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    thumbnail_url = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    source = serializers.CharField()
    status = serializers.CharField()
    original_name = serializers.CharField()


def _lease(pk: int) -> Lease:
    """The lease with this id (404 if there is none). Whose it is and whether it may still be
    acted on is checked by the service: on this plain read before any expensive work, then
    again under the row lock (``review.queue.lease_get_for_update``)."""
    return get_object_or_404(Lease, pk=pk)


class NextAPI(RoleAPI):
    """Lease the next item of a dataset (or the one the reviewer already holds there)."""

    required_roles = (REVIEWER,)

    class InputSerializer(serializers.Serializer):
        dataset = serializers.SlugField()

    class OutputSerializer(serializers.Serializer):
        lease = inline_serializer("LeaseOut", {"id": serializers.IntegerField(), "expires_at": serializers.DateTimeField(),
                                               "dataset": serializers.CharField(), "version": serializers.IntegerField()})
        image = ImageOutput()
        version = serializers.IntegerField(help_text="Latest annotation version of the image: send it back as expected_version.")
        require_all_checked = serializers.BooleanField(help_text="The dataset approves only when every element is decided.")
        base = AnnotationOutput(allow_null=True)
        annotators = AnnotationOutput(many=True, help_text="The model annotators of the latest pipeline run")
        earlier_annotators = AnnotationOutput(many=True, help_text="Annotators of earlier runs or imports still current")
        disagreement = AnnotatorsDisagreementJSON(allow_null=True, help_text="Null with fewer than two annotators")
        critic = CriticJSON(allow_null=True, help_text="The base annotation's critic verdicts")
        draft = DraftSnapshotJSON(allow_null=True, help_text="This reviewer's draft of the item")
        draft_notice = serializers.CharField(allow_blank=True, help_text="Why a stored draft was not sent "
                                             "(larger than EMOVERSE_MAX_DRAFT_BYTES), else empty")
        refine_available = serializers.BooleanField(help_text="false when click-to-refine is not set up (the page disables its tool)")

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, 404: NOT_FOUND})
    def post(self, request):
        slug = validated_input(self.InputSerializer, request.data)["dataset"]
        if selectors.lease_payload_json_available():  # PostgreSQL: one statement, its JSON sent as built
            try:
                row = queue.lease_next_row(dataset_slug=slug, reviewer=request.user)
            except Dataset.DoesNotExist:
                raise Http404("No Dataset matches the given query.") from None
            return json_answer(request, selectors.lease_payload_json(row))
        dataset = get_object_or_404(Dataset, slug=slug)
        lease = queue.lease_next(dataset=dataset, reviewer=request.user)
        return Response(self.OutputSerializer(selectors.lease_payload(lease)).data)


class LeaseReleaseAPI(RoleAPI):
    """Give the item back to the queue."""

    required_roles = (REVIEWER,)
    end_state = LeaseState.RELEASED

    @extend_schema(request=None, responses={204: None})
    def post(self, request, pk: int):
        queue.lease_end(lease=_lease(pk), reviewer=request.user, state=self.end_state)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeaseSkipAPI(LeaseReleaseAPI):
    """Skip the item: back to the queue, and to this reviewer only after everything else."""

    end_state = LeaseState.SKIPPED


class DraftAPI(RoleAPI):
    """This reviewer's work in progress on the leased image. Saving renews a live lease."""

    required_roles = (REVIEWER,)

    class InputSerializer(serializers.Serializer):
        payload = serializers.JSONField()

    class OutputSerializer(serializers.Serializer):
        payload = serializers.JSONField()
        saved_at = serializers.DateTimeField()
        lease_expires_at = serializers.DateTimeField(source="lease.expires_at", allow_null=True)

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request, pk: int):
        draft = queue.draft_get(lease=_lease(pk), reviewer=request.user)
        if draft is None:
            return Response({"detail": "No draft saved for this item."}, status=status.HTTP_404_NOT_FOUND)
        return Response(self.OutputSerializer(draft).data)

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def put(self, request, pk: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            draft = queue.draft_save(lease=_lease(pk), reviewer=request.user, payload=data.validated_data["payload"])
        except DraftTooLarge as exc:
            return Response({"detail": str(exc), "field": "payload"}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        return Response(self.OutputSerializer(draft).data)


class SubmitAPI(RoleAPI):
    """Submit the review: a new human annotation version, decisions and disagreement rows."""

    required_roles = (REVIEWER,)

    class InputSerializer(serializers.Serializer):
        expected_version = serializers.IntegerField(min_value=0, max_value=MAX_VERSION)
        decision = serializers.ChoiceField(choices=[Decision.APPROVED, Decision.REJECTED, Decision.FLAGGED])
        reason = serializers.CharField(required=False, allow_blank=True, default="")
        annotation = AnnotationInputJSON()
        element_decisions = ElementDecisionsField(child=serializers.JSONField(), required=False, default=list)
        time_spent_ms = serializers.IntegerField(min_value=0, required=False, default=0)

    class OutputSerializer(serializers.Serializer):
        annotation_id = serializers.IntegerField(source="annotation.pk")
        version = serializers.IntegerField(source="annotation.version")
        image_status = serializers.CharField()
        disagreements = serializers.IntegerField()
        unchecked = serializers.IntegerField(help_text="Elements approved with the item without a reviewer's action "
                                                       "(status accepted_unchecked; no disagreement rows)")

    def initial(self, request, *args, **kwargs):
        # On PostgreSQL the lease read goes with the token's statement, in one round trip.
        attach_lease_read(request._request, kwargs["pk"])
        super().initial(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 409: CONFLICT})
    def post(self, request, pk: int):
        data = validated_input(self.InputSerializer, request.data)
        try:
            lease = services.lease_for_submit(pk, data["annotation"], data["element_decisions"],
                                              getattr(request._request, READ_WITH_TOKEN, None))
        except Lease.DoesNotExist:
            raise Http404("No lease matches the given query.") from None
        result = services.review_submit(lease=lease, reviewer=request.user, fresh=True, **data)
        # plain numbers and a status name: orjson writes what DRF's JSONRenderer would
        return json_answer(request, orjson.dumps({
            "annotation_id": result.annotation.pk, "version": result.annotation.version, "image_status": result.image_status,
            "disagreements": result.disagreements, "unchecked": result.unchecked}), status=status.HTTP_201_CREATED)


class ProgressAPI(RoleAPI):
    """Items done, being reviewed now, waiting for adjudication and left; reviews per reviewer."""

    required_roles = USER_ROLES

    class OutputSerializer(serializers.Serializer):
        dataset = serializers.CharField()
        total = serializers.IntegerField()
        done = serializers.IntegerField()
        in_review = serializers.IntegerField()
        adjudication = serializers.IntegerField()
        left = serializers.IntegerField()
        per_reviewer = inline_serializer("ReviewerDone", {"username": serializers.CharField(), "done": serializers.IntegerField()}, many=True)
        you = inline_serializer("YourProgress", {"reviewed": serializers.IntegerField(), "left": serializers.IntegerField()},
                                help_text="the caller's submitted reviews and the items the queue may still give them")

    @extend_schema(parameters=[OpenApiParameter("dataset", str, required=True)],
                   responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request):
        dataset = get_object_or_404(Dataset, slug=request.query_params.get("dataset", ""))
        return Response(self.OutputSerializer(selectors.dataset_progress(dataset=dataset, reviewer=request.user)).data)


class RefineAPI(RoleAPI):
    """Click-to-refine a mask with SAM on a GPU worker (503 when no segmenter is configured: what to
    configure for admins, one short line for everyone else);
    only on an item the caller is reviewing (live lease) or adjudicating (403 otherwise)."""

    required_roles = (REVIEWER, ADJUDICATOR)
    errors = {RefineUnavailable: 503, RefineTimeout: 504, RefineFailed: 502}

    class InputSerializer(serializers.Serializer):
        image_id = serializers.IntegerField()
        box = BoxJSON(required=False, allow_null=True, default=None, help_text="[x0, y0, x1, y1] pixels")
        points = PointsJSON(default=list, help_text="[[x, y], ...] pixels")
        labels = PointLabelsJSON(default=list, help_text="[1 | 0, ...] foreground / background, one per point")

    class OutputSerializer(serializers.Serializer):
        mask = MaskJSON(allow_null=True, help_text="COCO RLE {size, counts}; null when nothing was found")
        score = serializers.FloatField(allow_null=True)

    @extend_schema(request=InputSerializer,
                   responses={200: OutputSerializer, 404: NOT_FOUND, 502: ErrorSerializer, 503: ErrorSerializer,
                              504: ErrorSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        args = dict(data.validated_data)
        image = get_object_or_404(Image, pk=args.pop("image_id"))
        if not visibility.user_is_editing(image=image, user=request.user):
            return Response({"detail": "Refine works on an item you are reviewing (you hold its lease) or adjudicating."},
                            status=status.HTTP_403_FORBIDDEN)
        try:
            out = mask_refine(image=image, **args)
        except RefineUnavailable as exc:  # the configuration text is for admins
            return Response({"detail": str(exc) if has_role(request.user, ADMIN) else REFINE_OFF}, status=503)
        except (RefineTimeout, RefineFailed) as exc:
            return Response({"detail": str(exc)}, status=self.errors[type(exc)])
        return Response(self.OutputSerializer(out).data)


class AdjudicationQueueAPI(RoleAPI):
    """Items whose independent reviews disagree, lowest priority first; never one the caller reviewed."""

    required_roles = (ADJUDICATOR,)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        dataset = serializers.CharField(source="dataset.slug")
        original_name = serializers.CharField()
        label = serializers.CharField(allow_null=True)
        priority = serializers.FloatField()
        updated_at = serializers.DateTimeField()
        conflict = serializers.JSONField(help_text="why the reviews conflict: labels, elements (count kept by one reviewer "
                                         "only), geometry (lowest IoU below the threshold, or null), reasons")

    class Pagination(CursorPage):
        ordering = ("priority", "created_at", "id")

    pagination_class = Pagination

    @extend_schema(parameters=[OpenApiParameter("dataset", str)], responses={200: OutputSerializer(many=True), 404: NOT_FOUND})
    def get(self, request):
        slug = request.query_params.get("dataset")
        dataset = get_object_or_404(Dataset, slug=slug) if slug else None
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.adjudication_queue(user=request.user, dataset=dataset), request, view=self)
        conflicts = selectors.adjudication_conflicts(page)
        for image in page:
            image.conflict = conflicts[image.pk]
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class AdjudicationItemAPI(RoleAPI):
    """GET: all reviews of an item side by side. POST: the final answer (an adjudication version).

    Only for an item waiting for adjudication (GET answers 404 otherwise, POST 403)
    and never to a person who reviewed it (403).
    """

    required_roles = (ADJUDICATOR,)

    class InputSerializer(serializers.Serializer):
        expected_version = serializers.IntegerField(min_value=0, max_value=MAX_VERSION)
        decision = serializers.ChoiceField(choices=[Decision.APPROVED, Decision.REJECTED, Decision.FLAGGED], default=Decision.APPROVED)
        reason = serializers.CharField(required=False, allow_blank=True, default="")
        annotation = AnnotationInputJSON()

    class OutputSerializer(serializers.Serializer):
        image = ImageOutput()
        dataset = serializers.CharField()
        version = serializers.IntegerField()
        base = AnnotationOutput(allow_null=True)
        annotators = AnnotationOutput(many=True, help_text="The model annotators of the latest pipeline run")
        earlier_annotators = AnnotationOutput(many=True, help_text="Annotators of earlier runs or imports still current")
        critic = CriticJSON(allow_null=True)
        disagreement = AnnotatorsDisagreementJSON(allow_null=True, help_text="The annotators' triplets paired by meaning, as on the review page")
        conflict = serializers.JSONField(help_text="Why the reviews conflict (as in the queue)")
        reviews = ReviewOutput(many=True, help_text="Every independent review side by side")

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request, image_id: int):
        image = get_object_or_404(Image.objects.select_related("dataset"), pk=image_id)
        visibility.adjudication_check(image=image, user=request.user)
        return Response(self.OutputSerializer(selectors.adjudication_payload(image)).data)

    @extend_schema(request=InputSerializer, responses={201: SubmitAPI.OutputSerializer, 409: CONFLICT})
    def post(self, request, image_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        image = get_object_or_404(Image, pk=image_id)
        result = adjudication.adjudication_submit(image=image, adjudicator=request.user, **data.validated_data)
        return Response(SubmitAPI.OutputSerializer(result).data, status=status.HTTP_201_CREATED)


class DisagreementListAPI(RoleAPI):
    """The model-versus-human disagreement log, newest first (cursor-paginated, read-only)."""

    required_roles = (ADMIN, RESEARCHER)

    class FilterSerializer(serializers.Serializer):
        dataset = serializers.SlugField(required=False, default="")
        model = serializers.CharField(required=False, default="")
        field = serializers.ChoiceField(choices=DisagreementField.choices, required=False, default="")
        reviewer = serializers.CharField(required=False, default="")
        kind = serializers.ChoiceField(choices=DisagreementKind.choices, required=False, default="")
        since = CheckedDateTimeField(required=False, default=None)
        until = CheckedDateTimeField(required=False, default=None)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        image = serializers.IntegerField(source="image_id")
        dataset = serializers.CharField(source="dataset.slug")
        model_name = serializers.CharField()
        model_annotation = serializers.IntegerField(source="model_annotation_id", allow_null=True)
        field = serializers.CharField()
        triplet_key = serializers.UUIDField(allow_null=True)
        role = serializers.CharField()
        model_value = serializers.JSONField()
        model_confidence = serializers.FloatField(allow_null=True)
        human_value = serializers.JSONField()
        box_iou = serializers.FloatField(allow_null=True)
        mask_iou = serializers.FloatField(allow_null=True)
        paired_by = serializers.CharField(help_text="How the element's model and human triplets were paired: key, "
                                                    "meaning, words (no phrase embedding yet); empty when unpaired")
        reviewer = serializers.CharField(source="reviewer.username")
        annotation = serializers.IntegerField(source="annotation_id")
        version = serializers.IntegerField(source="annotation.version")
        kind = serializers.CharField()
        created_at = serializers.DateTimeField()

    class Pagination(NewestFirst):
        page_size = 50
        page_size_query_param = "page_size"
        max_page_size = 500

    pagination_class = Pagination

    @extend_schema(parameters=[FilterSerializer], responses={200: OutputSerializer(many=True)})
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.disagreement_list(user=request.user, **filters.validated_data), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


def _name_schema_components(*apis: type[APIView]) -> None:
    """Give each nested Input/Output serializer a unique OpenAPI component name (e.g. ``SubmitOutput``)."""
    for api in apis:
        for attr in ("InputSerializer", "OutputSerializer", "FilterSerializer"):
            serializer = api.__dict__.get(attr)
            if serializer is not None:
                meta = type("Meta", (), {"ref_name": api.__name__.removesuffix("API") + attr.removesuffix("Serializer")})
                serializer.Meta = meta


_name_schema_components(NextAPI, DraftAPI, SubmitAPI, ProgressAPI, RefineAPI, AdjudicationQueueAPI, AdjudicationItemAPI,
                        DisagreementListAPI)
