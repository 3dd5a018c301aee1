from django.urls import path

from exports import apis

urlpatterns = [
    path("", apis.ExportListAPI.as_view(), name="api-export-list"),
    path("<id:pk>/", apis.ExportDetailAPI.as_view(), name="api-export-detail"),
    path("<id:pk>/restart/", apis.ExportRestartAPI.as_view(), name="api-export-restart"),
    path("<id:pk>/download/", apis.ExportDownloadAPI.as_view(), name="api-export-download"),
    path("<id:pk>/files/<path:path>", apis.ExportFileAPI.as_view(), name="api-export-file"),
]
