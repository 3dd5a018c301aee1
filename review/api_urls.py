"""Review API under /api/review/ (docs/review-api.md)."""

from django.urls import path

from review import apis

urlpatterns = [
    path("next/", apis.NextAPI.as_view(), name="api-review-next"),
    path("leases/<id:pk>/release/", apis.LeaseReleaseAPI.as_view(), name="api-review-release"),
    path("leases/<id:pk>/skip/", apis.LeaseSkipAPI.as_view(), name="api-review-skip"),
    path("leases/<id:pk>/draft/", apis.DraftAPI.as_view(), name="api-review-draft"),
    path("leases/<id:pk>/submit/", apis.SubmitAPI.as_view(), name="api-review-submit"),
    path("progress/", apis.ProgressAPI.as_view(), name="api-review-progress"),
    path("refine/", apis.RefineAPI.as_view(), name="api-review-refine"),
    path("adjudication/", apis.AdjudicationQueueAPI.as_view(), name="api-adjudication-queue"),
    path("adjudication/<id:image_id>/", apis.AdjudicationItemAPI.as_view(), name="api-adjudication-item"),
    path("disagreements/", apis.DisagreementListAPI.as_view(), name="api-disagreement-list"),
]
