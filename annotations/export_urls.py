from django.urls import path

from annotations import export_views

app_name = "exports"

urlpatterns = [
    path("", export_views.export_list, name="list"),
    path("start/", export_views.export_start, name="start"),
    path("<id:pk>/restart/", export_views.export_restart, name="restart"),
    path("<id:pk>/download.zip", export_views.export_download, name="download"),
    path("<id:pk>/files/<path:path>", export_views.export_file, name="file"),
]
