from django.urls import path

from ml import views

app_name = "ml"
urlpatterns = [
    path("<slug:slug>/", views.pipeline_page, name="pipeline"),
    path("<slug:slug>/start", views.pipeline_start, name="start"),
    path("<slug:slug>/retry", views.pipeline_retry, name="retry"),
]
