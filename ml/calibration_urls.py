"""Recalibrate under /agreement/calibration/recalibrate/, beside the calibration page
(``agreement.views.calibration_page``) where researchers find it."""

from django.urls import path

from ml import views

urlpatterns = [
    path("recalibrate/", views.recalibrate_view, name="agreement-recalibrate"),
]
