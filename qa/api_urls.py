from django.urls import path

from qa import apis, review_apis

urlpatterns = [
    path("datasets/<slug:slug>/categories/", apis.CategoryListAPI.as_view(), name="api-qa-category-list"),
    path(
        "datasets/<slug:slug>/categories/<slug:key>/", apis.CategoryDetailAPI.as_view(), name="api-qa-category-detail"
    ),
    path("datasets/<slug:slug>/dimensions/", apis.DimensionListAPI.as_view(), name="api-qa-dimension-list"),
    path(
        "datasets/<slug:slug>/dimensions/<slug:key>/", apis.DimensionDetailAPI.as_view(), name="api-qa-dimension-detail"
    ),
    path("datasets/<slug:slug>/scales/", apis.ScaleListAPI.as_view(), name="api-qa-scale-list"),
    path("datasets/<slug:slug>/scales/<slug:key>/", apis.ScaleDetailAPI.as_view(), name="api-qa-scale-detail"),
    path("pairs/", apis.QAPairListAPI.as_view(), name="api-qa-pair-list"),
    path("pairs/<id:pk>/", apis.QAPairDetailAPI.as_view(), name="api-qa-pair-detail"),
    path("pairs/key/<uuid:key>/versions/", apis.QAPairVersionsAPI.as_view(), name="api-qa-pair-versions"),
    path("ratings/", apis.RatingListAPI.as_view(), name="api-qa-rating-list"),
    path("review/leases/<id:pk>/draft/", review_apis.QADraftAPI.as_view(), name="api-qa-review-draft"),
    path("review/leases/<id:pk>/submit/", review_apis.QASubmitAPI.as_view(), name="api-qa-review-submit"),
    path("review/leases/<id:pk>/release/", review_apis.QAReleaseAPI.as_view(), name="api-qa-review-release"),
    path("review/<slug:slug>/next/", review_apis.QAReviewNextAPI.as_view(), name="api-qa-review-next"),
    path("ratings/aggregates/", apis.RatingAggregatesAPI.as_view(), name="api-qa-rating-aggregates"),
]
