from django.urls import path

from annotations import export_apis

urlpatterns = [
    path("", export_apis.ExportListAPI.as_view(), name="api-export-list"),
    path("<int:pk>/", export_apis.ExportDetailAPI.as_view(), name="api-export-detail"),
    path("<int:pk>/restart/", export_apis.ExportRestartAPI.as_view(), name="api-export-restart"),
    path("<int:pk>/download/", export_apis.ExportDownloadAPI.as_view(), name="api-export-download"),
    path("<int:pk>/files/<path:path>", export_apis.ExportFileAPI.as_view(), name="api-export-file"),
]
