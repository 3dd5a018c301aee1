"""REST API of model calibration under /api/agreement/calibration/: the fit now and the stored
versions (researchers and admins); admins may recalibrate (fit and store)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.api_schema import NOT_FOUND
from annotations.models import Dataset
from annotations.roles import HasRole
from core.vocabulary import ADMIN, RESEARCHER
from ml import calibration_fits, recalibration, selectors, services
from ml.config import get_registry


class RoleAPI(APIView):
    permission_classes = [HasRole]
    required_roles: tuple[str, ...] = (RESEARCHER, ADMIN)


class CalibrationVersionOutput(serializers.Serializer):
    model_name = serializers.CharField()
    version = serializers.IntegerField()
    temperature = serializers.FloatField()
    n_samples = serializers.IntegerField()
    ece_before = serializers.FloatField(allow_null=True)
    ece_after = serializers.FloatField(allow_null=True)
    reliability = serializers.JSONField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)


class CalibrationVersionListAPI(RoleAPI):
    """Stored calibration versions, newest first per model (the history)."""

    @extend_schema(responses={200: CalibrationVersionOutput(many=True)})
    def get(self, request):
        return Response(CalibrationVersionOutput(selectors.calibration_history(), many=True).data)


class CalibrationAPI(RoleAPI):
    """Per-model calibration now: ECE before, fitted temperature, ECE after, reliability bins."""

    @extend_schema(parameters=[OpenApiParameter("dataset", str, description="slug; default all datasets")],
                   responses={200: inline_serializer("ModelCalibration", {
                       "model": serializers.CharField(), "merged": serializers.BooleanField(), "n": serializers.IntegerField(),
                       "n_raw": serializers.IntegerField(), "current_temperature": serializers.FloatField(allow_null=True),
                       "ece_before": serializers.FloatField(allow_null=True), "temperature": serializers.FloatField(allow_null=True),
                       "ece_after": serializers.FloatField(allow_null=True), "reliability": serializers.JSONField(),
                       "notes": serializers.ListField(child=serializers.CharField())}, many=True), 404: NOT_FOUND})
    def get(self, request):
        slug = request.query_params.get("dataset")
        dataset = get_object_or_404(Dataset, slug=slug) if slug else None
        return Response([fit.as_dict() for fit in calibration_fits.cached_model_calibrations(dataset=dataset)])


class RecalibrateAPI(RoleAPI):
    """Fit and store a new calibration version per model (admins)."""

    required_roles = (ADMIN,)

    class InputSerializer(serializers.Serializer):
        dataset = serializers.SlugField(required=False, allow_blank=True, default="")
        min_samples = serializers.IntegerField(required=False, min_value=1, default=None, allow_null=True)

        class Meta:
            ref_name = "RecalibrateInput"

    @extend_schema(request=InputSerializer, responses={200: inline_serializer("RecalibrateOut", {
        "stored": CalibrationVersionOutput(many=True), "skipped": serializers.DictField(child=serializers.CharField())}),
        404: NOT_FOUND})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data["dataset"]
        dataset = get_object_or_404(Dataset, slug=slug) if slug else None
        result = recalibration.recalibrate(dataset=dataset, min_samples=data.validated_data["min_samples"],
                                           created_by=request.user)
        return Response({"stored": CalibrationVersionOutput(result.stored, many=True).data, "skipped": result.skipped})


class StageProgressOutput(serializers.Serializer):
    stage = serializers.CharField()
    waiting = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()


class PipelineProgressOutput(serializers.Serializer):
    pipeline_version = serializers.CharField()
    images = serializers.IntegerField()
    runs = serializers.DictField(child=serializers.IntegerField())
    stages = StageProgressOutput(many=True)
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class PipelineProgressAPI(RoleAPI):
    """A dataset's pre-annotation runs (the configured pipeline version): runs by status, each
    stage's progress, and the model calls' prompt/completion tokens and cost (admins)."""

    required_roles = (ADMIN,)

    @extend_schema(responses={200: PipelineProgressOutput, 404: NOT_FOUND})
    def get(self, request, slug: str):
        dataset = get_object_or_404(Dataset, slug=slug)
        registry = get_registry()
        version = registry.pipeline_version if not registry.check() else str(registry.config.get("pipeline_version") or "v1")
        progress = selectors.dataset_progress(
            dataset=dataset, pipeline_version=version, stage_names=services.pipeline_stage_names(registry)
        )
        return Response(PipelineProgressOutput(progress).data)
