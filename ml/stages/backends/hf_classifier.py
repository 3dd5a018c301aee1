"""EmotionClassifier backend: a transformers image classifier over Mikels' 8 emotions.

``model_path`` is a local folder in Hugging Face format holding an
``AutoModelForImageClassification`` checkpoint (an EmoViT-style fine-tune of
ViT, ConvNeXt, Swin, ...) and its image processor. Its ``config.json``
``id2label`` must name exactly the 8 emotions of :data:`core.vocabulary.EMOTIONS`, each
once, in any order (compared case-insensitively, surrounding spaces ignored);
anything else is refused at construction, since a second opinion over other
classes cannot be merged with the annotators' distributions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from core.vocabulary import BUILTIN_TAXONOMIES, EMOTIONS
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
)
from ml.stages.backends._vision import decode_image
from ml.stages.types import BackendNotConfigured, ImageInput

WHAT = "emotion classifier"
REQUIRED_FILES = (CONFIG_FILE, PROCESSOR_FILES, WEIGHT_FILES)


def classifier_labels(id2label: dict[int, str], num_labels: int, path: object) -> tuple[str, ...]:
    """The built-in taxonomy's labels (in its order) that ``id2label`` names, any order:
    Mikels' eight, or another of :data:`core.vocabulary.BUILTIN_TAXONOMIES`."""
    labels = [str(id2label.get(i, f"<missing {i}>")).strip().lower() for i in range(num_labels)]
    for taxonomy in BUILTIN_TAXONOMIES.values():
        if sorted(labels) == sorted(taxonomy.labels):
            return taxonomy.labels
    others = "; ".join(f"{t.name}: {list(t.labels)}" for t in BUILTIN_TAXONOMIES.values() if t.labels != EMOTIONS)
    raise BackendNotConfigured(
        f"{WHAT}: {path}/config.json id2label must be exactly the 8 emotions {list(EMOTIONS)} "
        f"(any order), or the labels of another built-in taxonomy ({others}), got {labels}"
    )


def emotion_columns(id2label: dict[int, str], num_labels: int, path: object) -> list[int]:
    """For each label of the classifier's taxonomy (:func:`classifier_labels`), the output column that predicts it."""
    labels = [str(id2label.get(i, f"<missing {i}>")).strip().lower() for i in range(num_labels)]
    return [labels.index(emotion) for emotion in classifier_labels(id2label, num_labels, path)]


class HFEmotionClassifier:
    """Options: ``model_path`` (local folder, required), ``name`` (the model name in
    provenance and calibration; default ``emotion-classifier``), ``device`` (``auto``,
    ``cpu``, ``cuda``, ``cuda:N``; default ``auto``), ``batch_size`` (default 16), ``dtype``
    (``float32``, ``bfloat16``, ``float16``; default ``float32``; probabilities are computed
    in float64) and ``tf32`` (TF32 matrix products on CUDA; default ``null``, torch's setting)."""

    def __init__(
        self,
        *,
        model_path: str,
        name: str = "emotion-classifier",
        device: str = "auto",
        batch_size: int = 16,
        dtype: str = "float32",
        tf32: bool | None = None,
    ):
        self.name = name
        self.batch_size = positive_int(batch_size, "batch_size")
        self.dtype = resolve_dtype(dtype, what=WHAT)
        self.path = model_folder(model_path, what=WHAT, required=REQUIRED_FILES)
        config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        self.labels = classifier_labels(dict(config.id2label), config.num_labels, self.path)
        self.columns = emotion_columns(dict(config.id2label), config.num_labels, self.path)
        self.device = resolve_device(device)
        set_tf32(tf32)
        self.processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        self.model = load_pretrained(AutoModelForImageClassification, self.path, device=self.device, dtype=self.dtype)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.name}: image classifier from {self.path} on {self.device}"

    def predict(self, images: Sequence[ImageInput]) -> list[dict[str, float]]:
        """One softmax distribution over :attr:`labels` (in that order, summing to 1) per image.

        Raises :class:`ml.stages.types.StageError` when an image cannot be decoded.
        """
        out: list[dict[str, float]] = []
        for batch in batched(list(images), self.batch_size):
            pils = [decode_image(image) for image in batch]
            inputs = self.processor(images=pils, return_tensors="pt")
            with self._lock, torch.inference_mode():
                logits = self.model(pixel_values=inputs["pixel_values"].to(self.device, self.dtype)).logits
            probs = torch.softmax(logits.double().cpu()[:, self.columns], dim=-1)
            for row in probs.tolist():
                total = sum(row)
                out.append({emotion: p / total for emotion, p in zip(self.labels, row)})
        return out
