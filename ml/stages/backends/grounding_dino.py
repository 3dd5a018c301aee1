"""Grounder backend: Grounding DINO through transformers, from a local folder.

``model_path`` is a folder in Hugging Face format (``config.json``, the weights,
the processor config and the BERT tokenizer), e.g.
``hf download IDEA-Research/grounding-dino-base --local-dir /models/grounding-dino-base``.
It is loaded once, with ``local_files_only=True``.

How a phrase gets its box. The phrases of one image are joined into one prompt
``"dark clouds. lone fisherman."`` (lower-cased; ``.`` and ``?`` inside a phrase
become spaces because they delimit phrases for the model). The model scores
every query box against every token (``sigmoid`` of its logits, shape
``(queries, tokens)``). A query is a detection when its best token score is
above ``box_threshold`` (as in the reference implementation); its score for a
phrase is its best score over that phrase's tokens. The phrase gets the
detection with the highest phrase score above ``text_threshold``, as an
absolute pixel ``XYXY`` :class:`~ml.stages.types.Box` clipped to the image, with that
phrase score as ``score``; ``None`` when no query passes both thresholds
(thresholds are strict, so ``1.0`` never passes). Prompts longer than the
model's ``max_text_len`` tokens are split over several forward passes.

Work is batched: each forward pass takes up to ``batch_size`` (image, prompt)
pairs, the images resized and padded together by the processor.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image as PILImage
from transformers import AutoProcessor, GroundingDinoForObjectDetection

from ml.stages.backends._torch_utils import (
    CONFIG_FILE,
    PROCESSOR_FILES,
    WEIGHT_FILES,
    batched,
    load_pretrained,
    model_folder,
    positive_int,
    resolve_device,
    resolve_dtype,
    set_tf32,
    unit_float,
)
from ml.stages.backends._vision import decode_image
from ml.stages.types import Box, Detection, ImageInput

WHAT = "Grounding DINO"
REQUIRED_FILES = (
    CONFIG_FILE,
    PROCESSOR_FILES,
    WEIGHT_FILES,
    "tokenizer.json|vocab.txt",
)
_DELIMITERS = re.compile(r"[.?]")
_SPACES = re.compile(r"\s+")


def clean_phrase(phrase: str) -> str:
    """The phrase as the model sees it: lower case, no ``.``/``?``, single spaces."""
    return _SPACES.sub(" ", _DELIMITERS.sub(" ", phrase.lower())).strip()


@dataclass(frozen=True)
class _Prompt:
    """One forward pass's text for one image: its phrases joined by ``". "``."""

    image_index: int
    phrases: tuple[str, ...]  # cleaned, distinct

    @property
    def text(self) -> str:
        return ". ".join(self.phrases) + "."

    def char_spans(self) -> list[tuple[int, int]]:
        spans, start = [], 0
        for phrase in self.phrases:
            spans.append((start, start + len(phrase)))
            start += len(phrase) + 2
        return spans


class GroundingDinoGrounder:
    """Options: ``model_path`` (local folder, required), ``device`` (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``; default ``auto``), ``box_threshold`` (default 0.35),
    ``text_threshold`` (default 0.25), ``batch_size`` ((image, prompt) pairs per
    forward pass; default 4), ``dtype`` (``float32``, ``bfloat16``, ``float16``; default
    ``float32``) and ``tf32`` (``true``/``false``: TF32 matrix products on CUDA; default
    ``null``, torch's setting; see :func:`set_tf32`)."""

    def __init__(
        self,
        *,
        model_path: str,
        device: str = "auto",
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        batch_size: int = 4,
        dtype: str = "float32",
        tf32: bool | None = None,
    ):
        self.box_threshold = unit_float(box_threshold, "box_threshold")
        self.text_threshold = unit_float(text_threshold, "text_threshold")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.dtype = resolve_dtype(dtype, what=WHAT)
        self.path = model_folder(model_path, what=WHAT, required=REQUIRED_FILES)
        self.device = resolve_device(device)
        set_tf32(tf32)
        self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
        self.tokenizer = self.processor.tokenizer
        self.model = load_pretrained(GroundingDinoForObjectDetection, self.path, device=self.device, dtype=self.dtype)
        # [CLS] and [SEP] take two of the model's text positions.
        self.max_phrase_tokens = int(self.model.config.max_text_len) - 2
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"Grounding DINO from {self.path} on {self.device} ({str(self.dtype).removeprefix('torch.')})"

    def ground(self, images: Sequence[ImageInput], phrases: Sequence[Sequence[str]]) -> list[list[Detection]]:
        """Batched: ``phrases[i]`` are grounded in ``images[i]``; one :class:`Detection` per phrase.

        Boxes are absolute pixel ``XYXY`` floats in the frame of ``images[i]``
        (``0 <= x0 < x1 <= width``, ``0 <= y0 < y1 <= height``); a phrase that is
        empty after cleaning, or not found above the thresholds, gets ``box=None``.
        Raises :class:`StageError` when an image cannot be decoded.
        """
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} lists of phrases")
        cleaned = [[self._fit(clean_phrase(p)) for p in ps] for ps in phrases]
        prompts = [prompt for i, cs in enumerate(cleaned) for prompt in self._prompts(i, cs)]
        found: list[dict[str, Box | None]] = [{} for _ in images]
        decoded: dict[int, PILImage.Image] = {}
        for batch in batched(prompts, self.batch_size):
            for prompt in batch:
                if prompt.image_index not in decoded:
                    decoded[prompt.image_index] = decode_image(images[prompt.image_index])
            probs, boxes, offsets = self._forward(
                [decoded[p.image_index] for p in batch], [p.text for p in batch]
            )
            for b, prompt in enumerate(batch):
                image = images[prompt.image_index]
                for phrase, tokens in zip(prompt.phrases, _token_spans(offsets[b], prompt.char_spans())):
                    found[prompt.image_index][phrase] = self._best_box(
                        probs[b], boxes[b], tokens, image.width, image.height
                    )
        return [
            [Detection(phrase=p, box=found[i].get(c)) for p, c in zip(ps, cs)]
            for i, (ps, cs) in enumerate(zip(phrases, cleaned))
        ]

    def _forward(
        self, pils: list[PILImage.Image], texts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token probabilities ``(B, Q, T)``, boxes ``(B, Q, 4)`` normalised ``cx, cy, w, h``
        and token character offsets ``(B, T', 2)``, all on the CPU."""
        encoded = self.processor(
            images=pils,
            text=texts,
            return_tensors="pt",
            padding=True,
            return_offsets_mapping=True,
        )
        offsets = encoded.pop("offset_mapping")
        with self._lock, torch.inference_mode():
            encoded["pixel_values"] = encoded["pixel_values"].to(self.dtype)
            outputs = self.model(**encoded.to(self.device))
        probs = outputs.logits.float().sigmoid().cpu()  # text positions past the prompt are -inf: 0
        return probs, outputs.pred_boxes.float().cpu(), offsets

    # -- prompts -------------------------------------------------------------------------
    def _prompts(self, image_index: int, cleaned: Sequence[str]) -> list[_Prompt]:
        """The distinct non-empty phrases of one image, packed into prompts that fit ``max_text_len``."""
        groups: list[list[str]] = []
        used = 0
        for phrase in dict.fromkeys(c for c in cleaned if c):
            cost = self._n_tokens(phrase) + 1  # and its "."
            if not groups or used + cost > self.max_phrase_tokens:
                groups.append([])
                used = 0
            groups[-1].append(phrase)
            used += cost
        return [_Prompt(image_index, tuple(g)) for g in groups]

    def _n_tokens(self, phrase: str) -> int:
        return len(self.tokenizer(phrase, add_special_tokens=False)["input_ids"])

    def _fit(self, cleaned: str) -> str:
        """Cut a phrase to the longest prefix of whole tokens that fits one prompt."""
        limit = self.max_phrase_tokens - 1
        encoded = self.tokenizer(cleaned, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= limit:
            return cleaned
        return cleaned[: encoded["offset_mapping"][limit - 1][1]].strip()

    # -- boxes ---------------------------------------------------------------------------
    def _best_box(
        self,
        probs: torch.Tensor,
        boxes: torch.Tensor,
        tokens: list[int],
        width: int,
        height: int,
    ) -> Box | None:
        """The phrase's best detection: ``probs`` ``(Q, T)``, ``boxes`` ``(Q, 4)`` normalised ``cxcywh``."""
        if not tokens:
            return None
        objectness = probs.max(dim=-1).values
        phrase_score = probs[:, tokens].max(dim=-1).values
        cx, cy, w, h = boxes.unbind(-1)
        x0 = ((cx - w / 2) * width).clamp(0, width)
        x1 = ((cx + w / 2) * width).clamp(0, width)
        y0 = ((cy - h / 2) * height).clamp(0, height)
        y1 = ((cy + h / 2) * height).clamp(0, height)
        valid = (
            (objectness > self.box_threshold) & (phrase_score > self.text_threshold) & (x1 > x0) & (y1 > y0)
        )
        if not bool(valid.any()):
            return None
        q = int(torch.where(valid, phrase_score, torch.full_like(phrase_score, -1.0)).argmax())
        return Box(
            x0=float(x0[q]),
            y0=float(y0[q]),
            x1=float(x1[q]),
            y1=float(y1[q]),
            score=float(phrase_score[q]),
        )


def _token_spans(offsets: torch.Tensor, char_spans: list[tuple[int, int]]) -> list[list[int]]:
    """For each phrase's character span, the positions of the tokens inside it.

    ``offsets`` is the tokenizer's ``(T, 2)`` character offsets of one prompt;
    special and padding tokens have empty offsets and belong to no phrase.
    """
    pairs = [(int(a), int(b)) for a, b in offsets.tolist()]
    return [[t for t, (a, b) in enumerate(pairs) if b > a >= start and b <= end] for start, end in char_spans]
