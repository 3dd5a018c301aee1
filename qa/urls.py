"""QA pages (the API is in qa/api_urls.py)."""

from django.urls import path

from qa import views

urlpatterns = [
    path("", views.qa_index, name="qa-index"),
    path("review/<slug:slug>/", views.qa_review_page, name="qa-review-page"),
    path("rate/<slug:slug>/", views.rate_next, name="qa-rate-next"),
    path("rate/<slug:slug>/blind/", views.rate_blind, name="qa-rate-blind"),
    path("rate/<slug:slug>/<id:image_id>/", views.rate_image, name="qa-rate-image"),
    path("adjudication/", views.adjudication_list, name="qa-adjudication-list"),
    path("adjudication/<id:pk>/", views.adjudication_item, name="qa-adjudication-item"),
]
