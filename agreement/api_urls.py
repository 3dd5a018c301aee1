"""Agreement API under /api/agreement/."""

from django.urls import path

from agreement import apis

urlpatterns = [
    path("datasets/<slug:slug>/report/", apis.ReportAPI.as_view(), name="api-agreement-report"),
    path("datasets/<slug:slug>/ratings/", apis.RatingsAgreementAPI.as_view(), name="api-agreement-ratings"),
    path("datasets/<slug:slug>/qa/", apis.QaAgreementAPI.as_view(), name="api-agreement-qa"),
]
