from django.urls import path

from agreement import views

urlpatterns = [
    path("", views.dataset_list, name="agreement-index"),
    path("calibration/", views.calibration_page, name="agreement-calibration"),  # before <slug:slug>/
    path("<slug:slug>/", views.report_page, name="agreement-report"),
    path("<slug:slug>/status/", views.report_status, name="agreement-report-status"),
    path("<slug:slug>/report.csv", views.report_csv_download, name="agreement-report-csv"),
    path("<slug:slug>/report.json", views.report_json_download, name="agreement-report-json"),
]
