from django.urls import path

from annotations import export_apis

urlpatterns = [
    path("", export_apis.ExportListAPI.as_view(), name="api-export-list"),
    path("<id:pk>/", export_apis.ExportDetailAPI.as_view(), name="api-export-detail"),
    path("<id:pk>/restart/", export_apis.ExportRestartAPI.as_view(), name="api-export-restart"),
    path("<id:pk>/download/", export_apis.ExportDownloadAPI.as_view(), name="api-export-download"),
    path("<id:pk>/files/<path:path>", export_apis.ExportFileAPI.as_view(), name="api-export-file"),
]
