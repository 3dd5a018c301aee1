from django.apps import AppConfig
from django.urls import register_converter

from annotations.converters import DatabaseIdConverter


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"

    def ready(self):
        from annotations import tokens

        tokens.connect_signals()
        register_converter(DatabaseIdConverter, "id")  # <id:pk> in every app's URLs
