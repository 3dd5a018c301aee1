from tests.ml.core_fixtures import fake_openai, openai_key  # noqa: F401
