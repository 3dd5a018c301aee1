from django.urls import path

from exports import views

app_name = "exports"

urlpatterns = [
    path("", views.export_list, name="list"),
    path("start/", views.export_start, name="start"),
    path("<id:pk>/restart/", views.export_restart, name="restart"),
    path("<id:pk>/download.zip", views.export_download, name="download"),
    path("<id:pk>/files/<path:path>", views.export_file, name="file"),
]
