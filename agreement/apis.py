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
    "calibration": serializers.JSONField(), "ratings": serializers.JSONField(help_text="see AgreementRatings"),
    "qa": serializers.JSONField(help_text="see AgreementQA"),
})
FILTERS = [
    OpenApiParameter("source", str), OpenApiParameter("label", str),
    OpenApiParameter("date_from", str, description="YYYY-MM-DD, reviews on or after"),
    OpenApiParameter("date_to", str, description="YYYY-MM-DD, reviews on or before"),
    OpenApiParameter("reviewer", str, many=True, description="usernames; repeat the parameter"),
]


def _result(component: str, **extra: serializers.Field) -> serializers.Serializer:
    """A statistic: its value and interval, or ``value: null`` with the reason it is undefined."""
    return inline_serializer(component, {
        "value": serializers.FloatField(allow_null=True), "low": serializers.FloatField(allow_null=True, required=False),
        "high": serializers.FloatField(allow_null=True, required=False),
        "n": serializers.IntegerField(allow_null=True, required=False),
        "confidence": serializers.FloatField(required=False),
        "undefined": serializers.CharField(required=False, help_text="why there is no value"), **extra,
    })


STAT = _result("AgreementStatistic", undefined_resamples=serializers.IntegerField(required=False))
CORRELATION = _result("AgreementCorrelation", p_value=serializers.FloatField(allow_null=True, required=False),
                      note=serializers.CharField(required=False))
ICC_FORM = _result("AgreementICC", form=serializers.CharField(help_text="psych::ICC name: ICC2, ICC2k, ICC3, ICC3k"),
                   name=serializers.CharField(help_text="McGraw & Wong: ICC(A,1), ICC(A,k), ICC(C,1), ICC(C,k)"),
                   model=serializers.CharField(), type=serializers.CharField(), unit=serializers.CharField(),
                   f=serializers.FloatField(allow_null=True), df1=serializers.FloatField(),
                   df2=serializers.FloatField(), p_value=serializers.FloatField(allow_null=True))
RATE = _result("AgreementRate", successes=serializers.IntegerField())
SECTION_HEAD = {"dataset": serializers.JSONField(), "filters": serializers.JSONField(),
                "generated_at": serializers.DateTimeField()}
RATINGS = inline_serializer("AgreementRatings", {**SECTION_HEAD, "scales": inline_serializer("AgreementScale", {
    "scale": serializers.CharField(), "name": serializers.CharField(),
    "range": serializers.ListField(child=serializers.FloatField()), "counts": serializers.JSONField(),
    "icc": inline_serializer("AgreementICCBlock", {
        "n": serializers.IntegerField(allow_null=True), "raters": serializers.ListField(child=serializers.CharField()),
        "images_left_out": serializers.IntegerField(required=False), "mean_squares": serializers.JSONField(required=False),
        "forms": serializers.DictField(child=ICC_FORM, required=False),
        "value": serializers.FloatField(allow_null=True, required=False), "undefined": serializers.CharField(required=False),
    }),
    "krippendorff_alpha_interval": STAT, "krippendorff_alpha_ordinal": STAT,
    "rater_vs_mean": inline_serializer("AgreementRaterVsMean", {
        "rater": serializers.CharField(), "n": serializers.IntegerField(), "pearson": CORRELATION,
        "spearman": CORRELATION}, many=True),
    "model_vs_human": inline_serializer("AgreementModelVsHuman", {
        "model": serializers.CharField(), "pearson": CORRELATION, "spearman": CORRELATION}, many=True),
}, many=True)})
QA_ROW = inline_serializer("AgreementQARow", {
    "category": serializers.CharField(help_text='category key; "" pools all'),
    "dimension": serializers.CharField(help_text='dimension key; "" pools all'),
    "model": serializers.CharField(help_text='generating model (rows by model); ""'),
    "reviewed": serializers.IntegerField(), "accepted": serializers.IntegerField(),
    "edited": serializers.IntegerField(), "rejected": serializers.IntegerField(),
    "reasons": serializers.DictField(child=serializers.IntegerField()),
    "acceptance": RATE, "model_accuracy": RATE, "critic_accuracy": RATE,
})
QA = inline_serializer("AgreementQA", {
    **SECTION_HEAD, "counts": serializers.JSONField(), "confidence": serializers.FloatField(),
    "categories": serializers.DictField(child=serializers.CharField()),
    "dimensions": serializers.DictField(child=serializers.CharField()),
    "overall": QA_ROW, **{name: type(QA_ROW)(many=True) for name in ("by_category", "by_dimension", "by_cell", "by_model")},
})


class RoleAPI(APIView):
    permission_classes = [HasRole]
    required_roles: tuple[str, ...] = (RESEARCHER, ADMIN)


REPORT_STATE = inline_serializer("AgreementReportState", {
    "status": serializers.ChoiceField(["computing", "failed"]),
    "started": serializers.FloatField(required=False, help_text="Unix time the computation started"),
    "error": serializers.CharField(required=False),
})


class _ReportSectionAPI(RoleAPI):
    """The report of a dataset, or one section of it (``section``), with the report's 202/500 states."""

    section = ""

    def get(self, request, slug: str):
        dataset = get_object_or_404(Dataset, slug=slug)
        form = ReportFilterForm(request.query_params, reviewers=selectors.reviewer_names(dataset=dataset),
                                labels=dataset.get_taxonomy().labels)
        if not form.is_valid():
            raise ValidationError(form.errors)
        state = report_or_start(dataset=dataset, filters=form.filters())
        if state.report is not None:
            report = state.report
            return Response({"dataset": report["dataset"], "filters": report["filters"],
                             "generated_at": report["generated_at"], **report[self.section]}
                            if self.section else report)
        if state.status == "failed":
            return Response(state.as_dict(), status=500)
        return Response({**state.as_dict(), "status": "computing"}, status=202, headers={"Retry-After": "5"})


class ReportAPI(_ReportSectionAPI):
    """The agreement report of a dataset (the same dict as the page and the downloads).

    When a worker computes reports (a broker and a shared cache are configured) and
    this one is not cached yet, the first call starts it and answers 202 with a
    ``Retry-After``; ask again. A failed computation answers 500 with the reason once;
    the next call starts it again.
    """

    @extend_schema(parameters=FILTERS, responses={200: REPORT, 202: REPORT_STATE, 500: REPORT_STATE})
    def get(self, request, slug: str):
        return super().get(request, slug)


class RatingsAgreementAPI(_ReportSectionAPI):
    """Agreement of ratings per assessment scale: ICC (two-way random, absolute agreement and
    consistency, single and average measures, F-based intervals) on the largest complete block
    of images x raters, Krippendorff's alpha (interval, ordinal) with bootstrap intervals, each
    rater against the others' mean and each model against the people's mean (Pearson and
    Spearman, Fisher-z intervals). The ``ratings`` section of the report; same filters and states.
    """

    section = "ratings"

    @extend_schema(parameters=FILTERS, responses={200: RATINGS, 202: REPORT_STATE, 500: REPORT_STATE})
    def get(self, request, slug: str):
        return super().get(request, slug)


class QaAgreementAPI(_ReportSectionAPI):
    """How reviewers received the QA pairs: acceptance rate and the generating model's and the
    critic's answer accuracy against the human answer, with Wilson intervals, overall, per task
    category, analysis dimension, category x dimension and generating model. The ``qa`` section
    of the report; same filters and states."""

    section = "qa"

    @extend_schema(parameters=FILTERS, responses={200: QA, 202: REPORT_STATE, 500: REPORT_STATE})
    def get(self, request, slug: str):
        return super().get(request, slug)
