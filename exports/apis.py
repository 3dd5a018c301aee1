"""REST API for dataset exports (admins only): list, start, progress, download."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, RetrieveAPIView, get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.models import Dataset
from annotations.pagination import NewestFirst
from annotations.roles import HasRole
from core.vocabulary import ADMIN
from exports import services
from exports.downloads import file_response, snapshot_files, zip_response
from exports.models import ExportFormat, ExportSnapshot, ExportStatus
from exports.selectors import snapshot_is_stale


class FileSerializer(serializers.Serializer):
    path = serializers.CharField()
    bytes = serializers.IntegerField(required=False)
    sha256 = serializers.CharField(required=False)
    url = serializers.CharField()


class ExportOutput(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    percent = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField(help_text="Running without progress for EMOVERSE_EXPORT_STALE_SECONDS: "
                                                        "its worker died; it may be restarted.")
    files = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportSnapshot
        fields = ["id", "dataset", "version", "format", "filters", "options", "status", "stale", "total", "done", "percent",
                  "error", "manifest", "files", "download_url", "task_id", "created_by", "run_by", "created_at", "started_at",
                  "heartbeat_at", "finished_at"]

    def get_percent(self, obj: ExportSnapshot) -> float:
        if obj.status == ExportStatus.COMPLETE:
            return 100.0
        return round(100 * obj.done / obj.total, 1) if obj.total else 0.0

    def get_stale(self, obj: ExportSnapshot) -> bool:
        return snapshot_is_stale(obj)

    @extend_schema_field(FileSerializer(many=True))
    def get_files(self, obj: ExportSnapshot) -> list[dict]:
        return [{**f, "url": reverse("api-export-file", args=[obj.pk, f["path"]])} for f in snapshot_files(obj)]

    def get_download_url(self, obj: ExportSnapshot) -> str | None:
        return reverse("api-export-download", args=[obj.pk]) if obj.status == ExportStatus.COMPLETE else None


class ExportInput(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", queryset=Dataset.objects.all())
    format = serializers.ChoiceField(choices=ExportFormat.choices)
    filters = serializers.DictField(required=False, default=dict,
                                    help_text="status, source, label (names or lists), since, until (ISO), "
                                              "date_field (image|annotation), min_agreement (0-1), include_auto_accepted "
                                              "(bool, default false: also take pipeline auto-accepted answers, "
                                              "machine-accepted, not human-approved). Default: approved only.")
    options = serializers.DictField(required=False, default=dict,
                                    help_text="images: none|copy|link|url (url only with public storage URLs); "
                                              "categories (COCO): emotion|role; include_rejected (COCO, Parquet: bool, "
                                              "default false: rejected elements are left out; true keeps them, marked "
                                              "with their status; JSONL always keeps them).")


class AdminAPI:
    permission_classes = [HasRole]
    required_roles = (ADMIN,)


class ExportListAPI(AdminAPI, ListAPIView):
    """Export snapshots, newest first (a running one whose worker died is ``stale``: restart it); POST starts one."""

    serializer_class = ExportOutput
    pagination_class = NewestFirst

    def get_queryset(self):
        return ExportSnapshot.objects.select_related("dataset", "created_by")

    @extend_schema(request=ExportInput, responses={201: ExportOutput})
    def post(self, request):
        data = ExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        snapshot = services.export_request(dataset=values["dataset"], export_format=values["format"], filters=values["filters"],
                                           options=values["options"], created_by=request.user)
        snapshot.refresh_from_db()
        return Response(ExportOutput(snapshot).data, status=status.HTTP_201_CREATED)


class ExportDetailAPI(AdminAPI, RetrieveAPIView):
    """One snapshot with its progress (done / total), manifest and file links."""

    serializer_class = ExportOutput
    queryset = ExportSnapshot.objects.select_related("dataset", "created_by")


class ExportRestartAPI(AdminAPI, APIView):
    @extend_schema(request=None, responses={200: ExportOutput})
    def post(self, request, pk: int):
        snapshot = services.export_restart(snapshot=get_object_or_404(ExportSnapshot, pk=pk))
        snapshot.refresh_from_db()
        return Response(ExportOutput(snapshot).data)


class ExportDownloadAPI(AdminAPI, APIView):
    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The snapshot folder as a zip.")})
    def get(self, request, pk: int):
        return zip_response(get_object_or_404(ExportSnapshot.objects.select_related("dataset"), pk=pk))


class ExportFileAPI(AdminAPI, APIView):
    @extend_schema(responses={
        # The file's own type: the manifest and COCO JSON, image copies, or bytes (JSONL, Parquet).
        (200, "application/json"): OpenApiResponse(OpenApiTypes.ANY, description="One file of the snapshot."),
        (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY),
        (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
    })
    def get(self, request, pk: int, path: str):
        return file_response(get_object_or_404(ExportSnapshot, pk=pk), path)
