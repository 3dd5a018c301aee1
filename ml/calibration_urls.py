"""The calibration page and Recalibrate, under /agreement/calibration/ (where researchers find them)."""

from django.urls import path

from ml import views

urlpatterns = [
    path("", views.calibration_page, name="agreement-calibration"),
    path("recalibrate/", views.recalibrate_view, name="agreement-recalibrate"),
]
