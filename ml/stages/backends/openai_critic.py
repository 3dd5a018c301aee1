"""Critic backend: an LLM behind an OpenAI-compatible endpoint checks both annotations.

It sees the image, the candidate triplets, the calibrated label and both
annotators' answers, reasons step by step, and returns a verdict for every
element and for the label (validated by :func:`ml.stages.parsing.parse_critic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.triplets import PhraseTriplet
from ml.stages.backends.openai_chat import ChatEndpoint
from ml.stages.parsing import check_completion, critic_schema, parse_critic
from ml.stages.prompts import PromptChoice, render_critic
from ml.stages.types import (
    AnnotatorResult,
    CalibrationResult,
    CriticResult,
    ImageInput,
    StageError,
)


class OpenAICritic:
    """Options: ``name``, ``prompt`` (default ``critic_v1`` for a Mikels dataset, ``critic_v2``
    for any other taxonomy) and every option of
    :class:`ml.stages.backends.openai_chat.ChatEndpoint`."""

    def __init__(self, *, name: str = "critic", prompt: str | None = None, **endpoint: Any):
        self.name = name
        self.prompts = PromptChoice(prompt, mikels_default="critic_v1", any_default="critic_v2")
        self.prompt = self.prompts.mikels
        self.endpoint = ChatEndpoint(**{"max_tokens": 2048, **endpoint})

    def describe(self) -> str:
        return f"{self.endpoint.describe()}, prompt {self.prompts.version}"

    def review(
        self,
        image: ImageInput,
        results: Sequence[AnnotatorResult],
        calibration: CalibrationResult,
        triplets: Sequence[PhraseTriplet] | None = None,
    ) -> CriticResult:
        labels = image.taxonomy.labels
        try:
            prompt = self.prompts.for_taxonomy(image.taxonomy)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}") from exc
        candidates, text = render_critic(prompt, results, calibration, triplets, image.taxonomy)
        completion = self.endpoint.complete(
            [self.endpoint.user_message(text, image)], schema_name="emoverse_critic", schema=critic_schema(labels)
        )
        try:
            raw = check_completion(completion.text, finish_reason=completion.finish_reason, refusal=completion.refusal)
            return parse_critic(
                raw, model=self.name, prompt_version=prompt.version, triplets=candidates, usage=completion.usage,
                labels=labels,
            )
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc
