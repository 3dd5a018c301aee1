from django.urls import path

from annotations import views

urlpatterns = [
    path("", views.home, name="home"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<slug:slug>/", views.dataset_detail, name="dataset-detail"),
    path("images/<id:pk>/file", views.image_file, name="image-file"),
    path("images/<id:pk>/thumbnail", views.image_thumbnail, name="image-thumbnail"),
]
