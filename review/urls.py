"""Review pages (the API is in review/api_urls.py)."""

from django.urls import path

from review import views

urlpatterns = [
    path("", views.review_index, name="review-index"),
    path("images/<id:pk>/", views.image_detail, name="image-detail"),
    path("adjudication/", views.adjudication_queue_page, name="adjudication-queue"),
    path("adjudication/<id:image_id>/", views.adjudication_page, name="adjudication-item"),
    path("disagreements/", views.disagreement_log, name="disagreement-log"),
    # Fixed paths (adjudication, disagreements, images) go above this one: it takes any slug.
    path("<slug:slug>/", views.review_page, name="review-page"),
]
