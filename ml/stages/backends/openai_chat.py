"""Shared client for OpenAI-compatible chat-completions endpoints.

Used by :mod:`ml.stages.backends.openai_vlm` and :mod:`ml.stages.backends.openai_critic`.
Works against OpenAI, Gemini's OpenAI-compatible endpoint, vLLM and Ollama
(``base_url``). The API key is read from the environment variable named by
``api_key_env``; it never appears in the configuration file.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import openai

from ml.stages.types import BackendNotConfigured, ImageInput, StageError, Usage

RESPONSE_FORMATS = ("json_schema", "json_object", "text")


@dataclass(frozen=True)
class Completion:
    text: str | None
    finish_reason: str | None
    refusal: str | None
    usage: Usage


def image_data_url(image: ImageInput) -> str:
    """The encoded image bytes as a ``data:`` URL (no re-encoding)."""
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


class ChatEndpoint:
    """One model behind an OpenAI-compatible endpoint.

    ``timeout`` is per HTTP request in seconds; ``max_retries`` is how often the
    ``openai`` client retries connection errors, 408/409/429 and 5xx with
    exponential backoff (honouring ``Retry-After``) before the error reaches us.
    What is still failing then becomes a transient :class:`StageError`; the
    Celery task retries it later with its own backoff. Prices are US dollars per
    1,000 prompt / completion tokens.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        response_format: str = "json_schema",
        image_detail: str = "auto",
        price_per_1k_prompt: float = 0.0,
        price_per_1k_completion: float = 0.0,
    ):
        if not model:
            raise BackendNotConfigured("option 'model' (the endpoint's model id, e.g. 'gpt-4o') is required")
        if response_format not in RESPONSE_FORMATS:
            raise BackendNotConfigured(f"option 'response_format' must be one of {RESPONSE_FORMATS}, got {response_format!r}")
        if api_key_env:
            api_key = os.environ.get(api_key_env, "")
            if not api_key:
                raise BackendNotConfigured(
                    f"environment variable {api_key_env} is not set: export the API key for {base_url or 'api.openai.com'} "
                    "in it (or set 'api_key_env': null for an endpoint without keys, e.g. a local vLLM/Ollama)"
                )
        else:
            api_key = "no-key"  # local endpoints ignore it, the client requires one
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.response_format = response_format
        self.image_detail = image_detail
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)

    def describe(self) -> str:
        return f"model {self.model} at {self.base_url or 'https://api.openai.com/v1'}"

    def user_message(self, text: str, image: ImageInput) -> dict[str, Any]:
        return {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": image_data_url(image), "detail": self.image_detail}},
            ],
        }

    def _response_format(self, schema_name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if self.response_format == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}}
        if self.response_format == "json_object":
            return {"type": "json_object"}
        return None

    def complete(self, messages: list[dict[str, Any]], *, schema_name: str, schema: dict[str, Any]) -> Completion:
        """One chat completion; API failures become :class:`StageError`."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        response_format = self._response_format(schema_name, schema)
        if response_format is not None:
            kwargs["response_format"] = response_format
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise StageError(f"{self.describe()}: request timed out", transient=True) from exc
        except openai.APIConnectionError as exc:
            raise StageError(f"{self.describe()}: connection failed: {exc}", transient=True) from exc
        except openai.APIStatusError as exc:
            transient = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            raise StageError(
                f"{self.describe()}: HTTP {exc.status_code}: {exc.message}", raw_output=exc.response.text, transient=transient
            ) from exc
        if not response.choices:
            raise StageError(f"{self.describe()}: the response has no choices", raw_output=response.model_dump_json())
        choice = response.choices[0]
        return Completion(
            text=choice.message.content,
            finish_reason=choice.finish_reason,
            refusal=getattr(choice.message, "refusal", None),
            usage=self.usage(response.usage),
        )

    def usage(self, usage: Any) -> Usage:
        if usage is None:
            return Usage()
        prompt, completion = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
        cost = prompt / 1000 * self.price_per_1k_prompt + completion / 1000 * self.price_per_1k_completion
        return Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
