"""QA generation and the blind self-check behind an OpenAI-compatible endpoint.

:class:`OpenAIQAGenerator` sends the image, its B-A-S triplets, CES label and rationale,
the dataset's categories and dimensions and the planned slots, asking for JSON in
:data:`ml.stages.qa.GENERATION_SCHEMA`; :class:`OpenAIQACritic` sends the image and the
questions (options shuffled, answers left out) asking for :data:`ml.stages.qa.ANSWER_SCHEMA`.
Both validate strictly (:mod:`ml.stages.qa`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.stages.backends.openai_chat import ChatEndpoint
from ml.stages.prompts import load_prompt
from ml.stages.qa import (
    ANSWER_SCHEMA,
    GENERATION_SCHEMA,
    AxisSpec,
    GeneratedPair,
    QAContext,
    QACriticResult,
    QAGenerationResult,
    QASlot,
    parse_answers,
    parse_generation,
    questions_text,
    render_values,
)
from ml.stages.parsing import check_completion
from ml.stages.types import ImageInput, StageError

MAX_PAIRS_PER_IMAGE = 50


class OpenAIQAGenerator:
    """Options: ``name``, ``prompt`` (default ``qa_generate_v1``), ``pairs_per_image``
    (default 10) and every option of :class:`~ml.stages.backends.openai_chat.ChatEndpoint`."""

    def __init__(
        self, *, name: str = "qa-generator", prompt: str = "qa_generate_v1", pairs_per_image: int = 10, **endpoint: Any
    ):
        if (
            isinstance(pairs_per_image, bool)
            or not isinstance(pairs_per_image, int)
            or not (1 <= pairs_per_image <= MAX_PAIRS_PER_IMAGE)
        ):
            raise ValueError(f"pairs_per_image must be an integer from 1 to {MAX_PAIRS_PER_IMAGE}")
        self.name = name
        self.pairs_per_image = pairs_per_image
        self.prompt = load_prompt(prompt)
        self.endpoint = ChatEndpoint(**{"max_tokens": 4096, "temperature": 0.7, **endpoint})

    def describe(self) -> str:
        return f"{self.endpoint.describe()}, prompt {self.prompt.version}"

    def generate(
        self, image: ImageInput, context: QAContext, slots: Sequence[QASlot], axes: Sequence[AxisSpec]
    ) -> QAGenerationResult:
        text = self.prompt.render(**render_values(context, slots, axes))
        completion = self.endpoint.complete(
            [self.endpoint.user_message(text, image)], schema_name="emoverse_qa", schema=GENERATION_SCHEMA
        )
        try:
            raw = check_completion(completion.text, finish_reason=completion.finish_reason, refusal=completion.refusal)
            return parse_generation(
                raw,
                model=self.name,
                prompt_version=self.prompt.version,
                slots=slots,
                context=context,
                usage=completion.usage,
            )
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc


class OpenAIQACritic:
    """Options: ``name``, ``prompt`` (default ``qa_answer_v1``) and every option of
    :class:`~ml.stages.backends.openai_chat.ChatEndpoint`."""

    def __init__(self, *, name: str = "qa-critic", prompt: str = "qa_answer_v1", **endpoint: Any):
        self.name = name
        self.prompt = load_prompt(prompt)
        self.endpoint = ChatEndpoint(**{"max_tokens": 2048, **endpoint})

    def describe(self) -> str:
        return f"{self.endpoint.describe()}, prompt {self.prompt.version}"

    def answer(self, image: ImageInput, pairs: Sequence[GeneratedPair]) -> QACriticResult:
        text = self.prompt.render(questions=questions_text(pairs))
        completion = self.endpoint.complete(
            [self.endpoint.user_message(text, image)], schema_name="emoverse_qa_answers", schema=ANSWER_SCHEMA
        )
        try:
            raw = check_completion(completion.text, finish_reason=completion.finish_reason, refusal=completion.refusal)
            return parse_answers(
                raw, model=self.name, prompt_version=self.prompt.version, count=len(pairs), usage=completion.usage
            )
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc
