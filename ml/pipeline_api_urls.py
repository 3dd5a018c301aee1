"""Pipeline API under /api/pipeline/ (see ``ml.apis``)."""

from django.urls import path

from ml import apis

urlpatterns = [
    path("<slug:slug>/progress/", apis.PipelineProgressAPI.as_view(), name="api-pipeline-progress"),
]
