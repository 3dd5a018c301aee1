"""Agreement API under /api/agreement/."""

from django.urls import path

from agreement import apis

urlpatterns = [
    path("datasets/<slug:slug>/report/", apis.ReportAPI.as_view(), name="api-agreement-report"),
]
