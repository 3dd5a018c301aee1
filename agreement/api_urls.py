"""Agreement API under /api/agreement/."""

from django.urls import path

from agreement import apis

urlpatterns = [
    path("datasets/<slug:slug>/report/", apis.ReportAPI.as_view(), name="api-agreement-report"),
    path("calibration/", apis.CalibrationAPI.as_view(), name="api-calibration"),
    path("calibration/versions/", apis.CalibrationVersionListAPI.as_view(), name="api-calibration-versions"),
    path("calibration/recalibrate/", apis.RecalibrateAPI.as_view(), name="api-recalibrate"),
]
