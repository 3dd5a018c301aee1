"""Calibration API under /api/agreement/calibration/ (see ``ml.apis``)."""

from django.urls import path

from ml import apis

urlpatterns = [
    path("", apis.CalibrationAPI.as_view(), name="api-calibration"),
    path("versions/", apis.CalibrationVersionListAPI.as_view(), name="api-calibration-versions"),
    path("recalibrate/", apis.RecalibrateAPI.as_view(), name="api-recalibrate"),
]
