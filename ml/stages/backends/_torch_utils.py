"""Shared plumbing of the torch backends: devices, local model folders, batching, caches.

Only modules under ``ml/stages/backends`` import this (and torch); the web process never does.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import torch

from ml.stages.types import BackendNotConfigured, ImageInput

T = TypeVar("T")
V = TypeVar("V")

CONFIG_FILE = "config.json"
PROCESSOR_FILES = "preprocessor_config.json|processor_config.json"
WEIGHT_FILES = "model.safetensors|model.safetensors.index.json|pytorch_model.bin|pytorch_model.bin.index.json"


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when visible, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    if not isinstance(device, str):
        raise BackendNotConfigured(
            f"option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise BackendNotConfigured(
            f"option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendNotConfigured(
                f"option device={device!r} but no CUDA device is visible; use 'cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise BackendNotConfigured(
                f"option device={device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif resolved.type != "cpu":
        raise BackendNotConfigured(
            f"option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        )
    return resolved


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: object, *, what: str) -> torch.dtype:
    """The weights' and inputs' dtype: ``"float32"`` (exact), ``"bfloat16"`` or ``"float16"``
    (half the memory, tensor cores on CUDA; bfloat16 also runs on CPUs)."""
    if dtype not in DTYPES:
        raise BackendNotConfigured(f"{what}: option 'dtype' must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def set_tf32(tf32: object) -> None:
    """``True``: float32 matrix products and convolutions on CUDA may use TF32 tensor cores
    (about 3x faster on Ampere and later, 10-bit mantissa); ``False``: exact float32;
    ``None``: leave torch's setting. The switch is process-wide (torch has no per-model one),
    so every backend of a worker that sets it should agree."""
    if tf32 is None:
        return
    if not isinstance(tf32, bool):
        raise BackendNotConfigured(f"option 'tf32' must be true, false or null, got {tf32!r}")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def load_pretrained(model_class, path: Path, *, device: torch.device, dtype: torch.dtype):
    """``model_class`` from the local folder ``path`` in ``dtype``, on ``device``, in eval mode."""
    model = model_class.from_pretrained(path, local_files_only=True, dtype=dtype)
    return model.to(device).eval()


def model_folder(
    path: str | Path | None,
    *,
    what: str,
    option: str = "model_path",
    required: Sequence[str] = (),
) -> Path:
    """The local model folder ``path``, checked to hold every file of ``required``.

    Each entry of ``required`` lists alternatives separated by ``|``. Raises
    :class:`BackendNotConfigured` naming the option and the exact missing path.
    """
    if not path:
        raise BackendNotConfigured(
            f"{what}: set option '{option}' to a local model folder (Hugging Face format)"
        )
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise BackendNotConfigured(f"{what}: option {option}={str(path)!r}: folder {folder} does not exist")
    for alternatives in required:
        names = alternatives.split("|")
        if not any((folder / name).is_file() for name in names):
            raise BackendNotConfigured(
                f"{what}: folder {folder} (option {option}) is incomplete: missing {folder / names[0]}"
                + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")
            )
    return folder


def model_file(path: str | Path | None, *, what: str, option: str, example: str) -> Path:
    """The local file ``path``; :class:`BackendNotConfigured` naming the option and path otherwise."""
    if not path:
        raise BackendNotConfigured(f"{what}: set option '{option}' to a local file, e.g. {example}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise BackendNotConfigured(f"{what}: option {option}={str(path)!r}: file {file} does not exist")
    return file


def positive_int(value: object, option: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BackendNotConfigured(f"option '{option}' must be an integer >= {minimum}, got {value!r}")
    return value


def unit_float(value: object, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise BackendNotConfigured(f"option '{option}' must be a number in [0, 1], got {value!r}")
    return float(value)


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def image_fingerprint(image: ImageInput) -> tuple[str, int, int, int, int]:
    """Cache key of an image: its ``key`` plus size and a CRC of its bytes (a changed file misses)."""
    return (
        image.key,
        image.width,
        image.height,
        len(image.data),
        zlib.crc32(image.data),
    )


class LRUCache(Generic[V]):
    """A thread-safe least-recently-used mapping holding at most ``size`` values (0 disables it)
    and, with ``max_bytes``, values of at most that many bytes together (``sizeof`` measures
    one); a value larger than the whole budget is not kept."""

    def __init__(self, size: int, *, max_bytes: int | None = None, sizeof=None):
        self.size = size
        self.max_bytes = max_bytes
        self._sizeof = sizeof or (lambda value: 0)
        self._items: OrderedDict[object, V] = OrderedDict()
        self._bytes: dict[object, int] = {}
        self.nbytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: object) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: object, value: V) -> None:
        if self.size <= 0:
            return
        nbytes = self._sizeof(value)
        if self.max_bytes is not None and nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self.nbytes -= self._bytes.pop(key)
            self._items[key] = value
            self._bytes[key] = nbytes
            self.nbytes += nbytes
            self._items.move_to_end(key)
            while len(self._items) > self.size or (self.max_bytes is not None and self.nbytes > self.max_bytes):
                old, _ = self._items.popitem(last=False)
                self.nbytes -= self._bytes.pop(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)
