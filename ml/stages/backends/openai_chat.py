"""Shared client for OpenAI-compatible chat-completions endpoints.

Used by :mod:`ml.stages.backends.openai_vlm` and :mod:`ml.stages.backends.openai_critic`.
Works against OpenAI, Gemini's OpenAI-compatible endpoint, vLLM and Ollama
(``base_url``). The API key is read from the environment variable named by
``api_key_env``; it never appears in the configuration file.

One endpoint object is shared by every thread of a worker process (the registry builds
it once), so an io worker with a thread pool (``celery worker -Q io -P threads -c 128``,
or :meth:`ChatEndpoint.map`) keeps many calls in flight. What reaches the server is
bounded by :class:`EndpointLimiter`: at most ``max_concurrency`` requests at once,
``requests_per_minute`` and ``tokens_per_minute`` paced by token buckets. Retries of
429/5xx/timeouts back off exponentially with full jitter, honour ``Retry-After``, and
give the concurrency slot back while they wait.
"""

from __future__ import annotations

import base64
import email.utils
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

from ml.stages.types import BackendNotConfigured, ImageInput, StageError, Usage

T = TypeVar("T")
R = TypeVar("R")
TRANSIENT_STATUS = (408, 409, 429)
# What one image part costs in prompt tokens before the answer says (OpenAI's high-detail tile
# count for a 1024 px image); only used to pace ``tokens_per_minute`` until the usage is known.
IMAGE_TOKENS_ESTIMATE = 765

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


class TokenBucket:
    """``rate`` units per second, at most ``capacity`` banked. :meth:`take` waits for its units;
    :meth:`charge` adjusts afterwards (the balance may go negative: later takers wait longer)."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self.level = capacity
        self.stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, units: float) -> None:
        units = min(units, self.capacity)  # one request larger than the bucket still goes, alone
        while True:
            with self._lock:
                self._refill()
                if self.level >= units:
                    self.level -= units
                    return
                wait = (units - self.level) / self.rate
            time.sleep(min(wait, 1.0))

    def charge(self, units: float) -> None:
        with self._lock:
            self._refill()
            self.level -= units


class EndpointLimiter:
    """The budget of one endpoint in this process: concurrency and request/token rates.

    Shared by every :class:`ChatEndpoint` with the same ``base_url``, ``model`` and limits
    (an annotator and the critic on one vLLM server): see :func:`endpoint_limiter`.
    ``None`` turns a limit off. Buckets hold one second's worth, so calls are paced
    evenly rather than sent in a burst at the top of each minute.
    """

    def __init__(
        self, *, max_concurrency: int | None, requests_per_minute: float | None, tokens_per_minute: float | None
    ):
        self.max_concurrency = max_concurrency
        self.slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self.requests = _bucket(requests_per_minute)
        self.tokens = _bucket(tokens_per_minute)

    def acquire(self, tokens_estimate: int) -> None:
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens_estimate)
        if self.slots is not None:
            self.slots.acquire()

    def release(self, tokens_estimate: int, tokens_used: int | None) -> None:
        """Give the slot back; charge the difference between the tokens used and the estimate."""
        if self.slots is not None:
            self.slots.release()
        if self.tokens is not None and tokens_used is not None:
            self.tokens.charge(tokens_used - min(tokens_estimate, self.tokens.capacity))


def _bucket(per_minute: float | None) -> TokenBucket | None:
    if per_minute is None:
        return None
    rate = per_minute / 60.0
    return TokenBucket(rate, capacity=max(1.0, rate))


_LIMITERS: dict[tuple, EndpointLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def endpoint_limiter(
    *, key: str, max_concurrency: int | None, requests_per_minute: float | None, tokens_per_minute: float | None
) -> EndpointLimiter:
    """The process-wide limiter of ``key`` (the endpoint and model) with these limits."""
    limits = (max_concurrency, requests_per_minute, tokens_per_minute)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get((key, limits))
        if limiter is None:
            limiter = _LIMITERS[(key, limits)] = EndpointLimiter(
                max_concurrency=max_concurrency, requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
            )
        return limiter


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms``, or ``Retry-After`` in seconds or as a date)."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value <= 0):
        raise ValueError(f"option {name!r} must be a positive {'integer' if integer else 'number'} or null, got {value!r}")


class ChatEndpoint:
    """One model behind an OpenAI-compatible endpoint, safe to call from many threads.

    ``timeout`` is per HTTP request in seconds. A connection error, a timeout, 408/409/429
    or a 5xx is tried again up to ``max_retries`` times after
    ``uniform(0, min(backoff_max_s, backoff_base_s × 2^attempt))`` seconds (full jitter), or
    after the server's ``Retry-After`` when it sends one (capped at ``backoff_max_s``).
    What is still failing then becomes a transient :class:`StageError`; the Celery task
    retries it later with its own backoff. ``max_concurrency`` (default 16),
    ``requests_per_minute`` and ``tokens_per_minute`` (default off) bound this process's
    calls to the endpoint (:class:`EndpointLimiter`). Prices are US dollars per 1,000
    prompt / completion tokens.
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
        max_concurrency: int | None = 16,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
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
        _positive("max_concurrency", max_concurrency, integer=True)
        _positive("requests_per_minute", requests_per_minute)
        _positive("tokens_per_minute", tokens_per_minute)
        _positive("backoff_base_s", backoff_base_s)
        _positive("backoff_max_s", backoff_max_s)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"option 'max_retries' must be an integer >= 0, got {max_retries!r}")
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.response_format = response_format
        self.image_detail = image_detail
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.limiter = endpoint_limiter(
            key=f"{base_url or 'openai'}|{model}", max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
        )
        # Retries are ours: they give the concurrency slot back while they wait. The client's
        # connection pool (1,000 connections) is shared by every thread of the process.
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)

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

    def tokens_estimate(self, messages: list[dict[str, Any]]) -> int:
        """Tokens a request may use before its usage is known: ~4 characters a token, a fixed
        cost per image, and the whole answer budget."""
        chars, images = 0, 0
        for message in messages:
            content = message.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            for part in parts:
                if part.get("type") == "text":
                    chars += len(part.get("text", ""))
                elif part.get("type") == "image_url":
                    images += 1
        return math.ceil(chars / 4) + images * IMAGE_TOKENS_ESTIMATE + self.max_tokens

    def backoff(self, attempt: int, error: Exception) -> float:
        """Seconds before retry ``attempt`` (0-based): the server's Retry-After, else full jitter."""
        asked = retry_after_s(getattr(getattr(error, "response", None), "headers", None))
        if asked is not None:
            return min(asked, self.backoff_max_s)
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))

    def complete(self, messages: list[dict[str, Any]], *, schema_name: str, schema: dict[str, Any]) -> Completion:
        """One chat completion within the endpoint's limits, with retries; failures become :class:`StageError`."""
        attempt = 0
        while True:
            try:
                return self._complete_once(messages, schema_name=schema_name, schema=schema)
            except _Retryable as retryable:
                if attempt >= self.max_retries:
                    raise retryable.error from retryable.cause
                time.sleep(self.backoff(attempt, retryable.cause))
                attempt += 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R | StageError]:
        """``fn(item)`` for every item from a thread pool as wide as ``max_concurrency`` (16 when
        unlimited), in order; a :class:`StageError` is returned in its item's place."""

        def call(item: T) -> R | StageError:
            try:
                return fn(item)
            except StageError as exc:
                return exc

        items = list(items)
        width = min(len(items), self.limiter.max_concurrency or 16) or 1
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="chat") as pool:
            return list(pool.map(call, items))

    def _complete_once(self, messages: list[dict[str, Any]], *, schema_name: str, schema: dict[str, Any]) -> Completion:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        response_format = self._response_format(schema_name, schema)
        if response_format is not None:
            kwargs["response_format"] = response_format
        estimate = self.tokens_estimate(messages)
        self.limiter.acquire(estimate)
        used: int | None = None
        try:
            response = self.client.chat.completions.create(**kwargs)
            if response.usage is not None:
                used = int(response.usage.total_tokens or 0) or None
        except openai.APITimeoutError as exc:
            raise _Retryable(StageError(f"{self.describe()}: request timed out", transient=True), exc) from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(StageError(f"{self.describe()}: connection failed: {exc}", transient=True), exc) from exc
        except openai.APIStatusError as exc:
            transient = exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500
            error = StageError(
                f"{self.describe()}: HTTP {exc.status_code}: {exc.message}", raw_output=exc.response.text, transient=transient
            )
            if transient:
                raise _Retryable(error, exc) from exc
            raise error from exc
        finally:
            self.limiter.release(estimate, used)
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


class _Retryable(Exception):
    """A transient failure of one attempt: ``error`` is raised when no retry is left."""

    def __init__(self, error: StageError, cause: Exception):
        super().__init__(error.reason)
        self.error, self.cause = error, cause
