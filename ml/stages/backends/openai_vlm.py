"""Annotator backend: a VLM behind an OpenAI-compatible chat-completions endpoint.

GPT-4o on api.openai.com; Gemini 2.5 through
``https://generativelanguage.googleapis.com/v1beta/openai/``; Qwen2.5-VL served
by vLLM or Ollama. The image goes as a data URL, the answer is requested as
structured output (JSON schema) and validated by :mod:`ml.stages.parsing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.stages.backends.openai_chat import ChatEndpoint
from ml.stages.parsing import ANNOTATION_SCHEMA, check_completion, parse_annotation
from ml.stages.prompts import load_prompt
from ml.stages.types import AnnotatorResult, ImageInput, StageError


class OpenAIAnnotator:
    """Options: ``name`` (the annotator's name, used for calibration and provenance),
    ``prompt`` (prompt version, default ``annotate_v1``) and every option of
    :class:`ml.stages.backends.openai_chat.ChatEndpoint` (``model``, ``base_url``,
    ``api_key_env``, ``timeout``, ``max_retries``, ``max_tokens``, prices...)."""

    def __init__(self, *, name: str, prompt: str = "annotate_v1", **endpoint: Any):
        self.name = name
        self.prompt = load_prompt(prompt)
        self.endpoint = ChatEndpoint(**endpoint)

    def describe(self) -> str:
        return f"{self.endpoint.describe()}, prompt {self.prompt.version}"

    def annotate(self, image: ImageInput) -> AnnotatorResult:
        completion = self.endpoint.complete(
            [self.endpoint.user_message(self.prompt.text, image)],
            schema_name="emoverse_annotation",
            schema=ANNOTATION_SCHEMA,
        )
        try:
            raw = check_completion(completion.text, finish_reason=completion.finish_reason, refusal=completion.refusal)
            return parse_annotation(raw, model=self.name, prompt_version=self.prompt.version, usage=completion.usage)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc

    def annotate_many(self, images: Sequence[ImageInput]) -> list[AnnotatorResult | StageError]:
        """:meth:`annotate` for every image with up to ``max_concurrency`` calls in flight, in
        order; an image whose call failed gets its :class:`StageError` in its place."""
        return self.endpoint.map(self.annotate, images)
