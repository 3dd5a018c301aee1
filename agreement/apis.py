"""Read-only REST API of agreement reports (researchers and admins)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from agreement import selectors
from agreement.forms import ReportFilterForm
from agreement.tasks import report_or_start
from annotations.models import Dataset
from annotations.roles import HasRole
from core.vocabulary import ADMIN, RESEARCHER

REPORT = inline_serializer("AgreementReport", {
    "dataset": serializers.JSONField(), "filters": serializers.JSONField(), "options": serializers.JSONField(),
    "generated_at": serializers.DateTimeField(), "counts": serializers.JSONField(), "labels": serializers.JSONField(),
    "confidence": serializers.JSONField(), "elements": serializers.JSONField(), "models": serializers.JSONField(),
})
FILTERS = [
    OpenApiParameter("source", str), OpenApiParameter("label", str),
    OpenApiParameter("date_from", str, description="YYYY-MM-DD, reviews on or after"),
    OpenApiParameter("date_to", str, description="YYYY-MM-DD, reviews on or before"),
    OpenApiParameter("reviewer", str, many=True, description="usernames; repeat the parameter"),
]


class RoleAPI(APIView):
    permission_classes = [HasRole]
    required_roles: tuple[str, ...] = (RESEARCHER, ADMIN)


REPORT_STATE = inline_serializer("AgreementReportState", {
    "status": serializers.ChoiceField(["computing", "failed"]),
    "started": serializers.FloatField(required=False, help_text="Unix time the computation started"),
    "error": serializers.CharField(required=False),
})


class ReportAPI(RoleAPI):
    """The agreement report of a dataset (the same dict as the page and the downloads).

    When a worker computes reports (a broker and a shared cache are configured) and
    this one is not cached yet, the first call starts it and answers 202 with a
    ``Retry-After``; ask again. A failed computation answers 500 with the reason once;
    the next call starts it again.
    """

    @extend_schema(parameters=FILTERS, responses={200: REPORT, 202: REPORT_STATE, 500: REPORT_STATE})
    def get(self, request, slug: str):
        dataset = get_object_or_404(Dataset, slug=slug)
        form = ReportFilterForm(request.query_params, reviewers=selectors.reviewer_names(dataset=dataset),
                                labels=dataset.get_taxonomy().labels)
        if not form.is_valid():
            raise ValidationError(form.errors)
        state = report_or_start(dataset=dataset, filters=form.filters())
        if state.report is not None:
            return Response(state.report)
        if state.status == "failed":
            return Response(state.as_dict(), status=500)
        return Response({**state.as_dict(), "status": "computing"}, status=202, headers={"Retry-After": "5"})
