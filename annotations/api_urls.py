from django.urls import path

from annotations import apis, token_apis

urlpatterns = [
    path("auth/token/", token_apis.TokenAPI.as_view(), name="api-token"),
    path("datasets/", apis.DatasetListAPI.as_view(), name="api-dataset-list"),
    path("datasets/<slug:slug>/", apis.DatasetDetailAPI.as_view(), name="api-dataset-detail"),
    path("images/", apis.ImageListAPI.as_view(), name="api-image-list"),
    path("images/<id:pk>/", apis.ImageDetailAPI.as_view(), name="api-image-detail"),
    path("images/<id:pk>/versions/", apis.ImageVersionsAPI.as_view(), name="api-image-versions"),
    path("annotations/", apis.AnnotationListAPI.as_view(), name="api-annotation-list"),
    path("annotations/<id:pk>/", apis.AnnotationDetailAPI.as_view(), name="api-annotation-detail"),
]
