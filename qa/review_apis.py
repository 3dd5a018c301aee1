"""REST API of the QA review (docs/qa.md, "QA review"): lease the next image, save a draft,
submit, release. Reviewers only; each acts on their own leases (403 otherwise); a stale or
second submit is a 409. The QA review page drives these endpoints."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.models import Dataset
from annotations.roles import HasRole
from core.vocabulary import REVIEWER
from qa import review, review_queue
from qa.models import QALease


class ReviewerAPI(APIView):
    permission_classes = [HasRole]
    required_roles = (REVIEWER,)


_PAYLOAD = inline_serializer(
    "QAReviewItem", fields={"lease": serializers.DictField(), "pairs": serializers.ListField()}
)


class QAReviewNextAPI(ReviewerAPI):
    """Lease the next image with pending pairs (or the one held): image, pairs, elements, draft."""

    @extend_schema(request=None, responses={200: _PAYLOAD})
    def post(self, request, slug: str):
        dataset = get_object_or_404(Dataset, slug=slug)
        lease = review_queue.qa_lease_next(dataset=dataset, reviewer=request.user)
        return Response(review_queue.qa_review_payload(lease=lease))


class QADraftAPI(ReviewerAPI):
    class QADraftInput(serializers.Serializer):
        payload = serializers.JSONField()

    @extend_schema(
        request=QADraftInput,
        responses={200: inline_serializer("QADraftSaved", fields={"saved_at": serializers.DateTimeField()})},
    )
    def put(self, request, pk: int):
        data = self.QADraftInput(data=request.data)
        data.is_valid(raise_exception=True)
        lease = get_object_or_404(QALease, pk=pk)
        draft = review_queue.qa_draft_save(lease=lease, reviewer=request.user, payload=data.validated_data["payload"])
        return Response({"saved_at": draft.saved_at})


class QASubmitAPI(ReviewerAPI):
    class QASubmitInput(serializers.Serializer):
        decisions = serializers.ListField(
            child=serializers.DictField(),
            max_length=1000,
            help_text="[{pair, decision: accept|edit|reject, reason, edit: {question, options, answer}}]",
        )

    @extend_schema(
        request=QASubmitInput,
        responses={
            200: inline_serializer(
                "QASubmitted",
                fields={
                    "final": serializers.BooleanField(),
                    "applied": serializers.IntegerField(),
                    "adjudications": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request, pk: int):
        data = self.QASubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        lease = get_object_or_404(QALease, pk=pk)
        result = review.qa_review_submit(lease=lease, reviewer=request.user, decisions=data.validated_data["decisions"])
        return Response({"final": result.final, "applied": result.applied, "adjudications": result.adjudications})


class QAReleaseAPI(ReviewerAPI):
    @extend_schema(
        request=None, responses={200: inline_serializer("QAReleased", fields={"state": serializers.CharField()})}
    )
    def post(self, request, pk: int):
        lease = review_queue.qa_lease_release(lease=get_object_or_404(QALease, pk=pk), reviewer=request.user)
        return Response({"state": lease.state})
