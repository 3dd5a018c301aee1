from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"

    def ready(self) -> None:
        """Embed the phrases of people's answers and of imports on a worker (``ml.tasks``)."""
        from annotations.signals import import_finished, phrases_added
        from ml import checks, tasks  # noqa: F401 - checks registers the configuration's system checks

        phrases_added.connect(tasks.on_phrases_added, dispatch_uid="ml.embed_annotations")
        import_finished.connect(tasks.on_import_finished, dispatch_uid="ml.embed_import")
