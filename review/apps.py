from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"

    def ready(self) -> None:
        """Plug the independence rule into the annotations API (which may not import ``review``)."""
        from annotations.selectors import hidden_answers_register  # apps load before models: import here
        from review.visibility import others_answers

        hidden_answers_register(others_answers)
