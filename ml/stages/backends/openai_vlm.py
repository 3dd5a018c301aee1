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
from ml.stages.parsing import annotation_schema, check_completion, parse_annotation
from ml.stages.prompts import PromptChoice, render_annotate
from ml.stages.types import AnnotatorResult, ImageInput, StageError


class OpenAIAnnotator:
    """Options: ``name`` (the annotator's name, used for calibration and provenance),
    ``prompt`` (prompt version; default ``annotate_v1`` for a Mikels dataset, ``annotate_v2``,
    which lists the dataset's labels, for any other taxonomy) and every option of
    :class:`ml.stages.backends.openai_chat.ChatEndpoint` (``model``, ``base_url``,
    ``api_key_env``, ``timeout``, ``max_retries``, ``max_tokens``, prices...)."""

    def __init__(self, *, name: str, prompt: str | None = None, **endpoint: Any):
        self.name = name
        self.prompts = PromptChoice(prompt, mikels_default="annotate_v1", any_default="annotate_v2")
        self.prompt = self.prompts.mikels
        self.endpoint = ChatEndpoint(**endpoint)

    def describe(self) -> str:
        return f"{self.endpoint.describe()}, prompt {self.prompts.version}"

    def annotate(self, image: ImageInput) -> AnnotatorResult:
        labels = image.taxonomy.labels
        try:
            prompt = self.prompts.for_taxonomy(image.taxonomy)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}") from exc
        completion = self.endpoint.complete(
            [self.endpoint.user_message(render_annotate(prompt, image.taxonomy), image)],
            schema_name="emoverse_annotation",
            schema=annotation_schema(labels),
        )
        try:
            raw = check_completion(completion.text, finish_reason=completion.finish_reason, refusal=completion.refusal)
            return parse_annotation(raw, model=self.name, prompt_version=prompt.version, usage=completion.usage,
                                    labels=labels)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc

    def annotate_many(self, images: Sequence[ImageInput]) -> list[AnnotatorResult | StageError]:
        """:meth:`annotate` for every image with up to ``max_concurrency`` calls in flight, in
        order; an image whose call failed gets its :class:`StageError` in its place."""
        return self.endpoint.map(self.annotate, images)
