"""One line of EmoVerse JSONL, before any file or database is touched (docs/emoverse-jsonl.md).

:func:`parse_line` reads the JSON and checks the keys that need no image: the
annotator, the source, the critic, and that every value can be stored: the policy
of ``core.text``, the same as the API's (no NUL, no lone UTF-16 surrogate, no
NaN or infinite number), read by :func:`load_json` (orjson where it gives the same
result as ``core.text.parse_json``, that function elsewhere). :func:`resolve_image_path` confines the image path
to the images folder. Both raise :class:`BadLine`, whose message is the reason
shown to the user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from json import JSONDecodeError
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any


from annotations.errors import DomainError
from annotations.importers.lines import DEFAULT_MAX_LINE_BYTES
from annotations.models import AnnotationKind, Image, ImageSource
from core.vocabulary import MIKELS, ROLES, Taxonomy
from core.text import TextPolicyError, is_blank, load_json

ANNOTATION_KEYS = ("triplets", "ces", "des", "rationale", "critic")
METADATA_KEYS = ("width", "height", "sha256")  # written by exports; checked when present
KNOWN_KEYS = frozenset({"image", "source", "annotator", *ANNOTATION_KEYS, *METADATA_KEYS})
ANNOTATOR_KINDS = {"model": AnnotationKind.MODEL, "human": AnnotationKind.HUMAN}
ANNOTATOR_KEYS = frozenset({"kind", "name", "prompt_version", "pipeline_version", "raw_output"})
VERDICTS = ("ok", "doubtful", "wrong")
APPROVED_AUTHOR = "import"  # author of --approved lines that name no annotator
MAX_IMAGE_NAME = Image._meta.get_field("original_name").max_length
_SOURCES = frozenset(ImageSource.values)


class BadLine(DomainError):
    """A line that cannot be imported; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Annotator:
    kind: str  # an AnnotationKind value
    name: str
    prompt_version: str = ""
    pipeline_version: str = ""
    raw_output: str = ""
    given: Mapping[str, Any] | None = None  # the annotator object as written in the file


@dataclass(frozen=True)
class ParsedLine:
    data: Mapping[str, Any]
    image: str
    source: str
    annotator: Annotator | None  # None: an image-only line
    critic: dict | None


@dataclass(frozen=True)
class ImportOptions:
    images_dir: Path  # resolved
    approved: bool = False
    source_default: str = ImageSource.WEB
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    taxonomy: Taxonomy = MIKELS  # the dataset's; its synonym map applies to the lines' emotion words


def _text(value: Any, name: str, max_length: int | None = None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLine(f"{name}: must be a string")
    if max_length is not None and len(value) > max_length:
        raise BadLine(f"{name}: longer than {max_length} characters")
    return value


def parse_annotator(value: Any, *, approved: bool) -> Annotator:
    """The ``annotator`` object; optional with ``--approved`` (the author is then ``import``)."""
    if value is None:
        if approved:
            return Annotator(kind=AnnotationKind.IMPORT, name=APPROVED_AUTHOR)
        raise BadLine('annotator: required ({"kind": "model" or "human", "name": ...}) unless importing with --approved')
    if not isinstance(value, Mapping):
        raise BadLine("annotator: must be an object with kind and name")
    unknown = sorted(set(value) - ANNOTATOR_KEYS)
    if unknown:
        raise BadLine(f"annotator: unknown key(s) {', '.join(unknown)}")
    kind = value.get("kind")
    if not isinstance(kind, str) or kind not in ANNOTATOR_KINDS:
        raise BadLine(f"annotator.kind: must be 'model' or 'human', got {kind!r}")
    name = _text(value.get("name"), "annotator.name", 150).strip()
    if is_blank(name):
        raise BadLine("annotator.name: must be a non-empty string")
    return Annotator(
        kind=AnnotationKind.IMPORT if approved else ANNOTATOR_KINDS[kind],
        name=name,
        prompt_version=_text(value.get("prompt_version"), "annotator.prompt_version", 64),
        pipeline_version=_text(value.get("pipeline_version"), "annotator.pipeline_version", 64),
        raw_output=_text(value.get("raw_output"), "annotator.raw_output"),
        given=dict(value),
    )


def validate_critic(value: Any, n_triplets: int, taxonomy: Taxonomy = MIKELS) -> dict:
    """The critic's verdicts: ``elements`` (triplet_index, role, verdict, reasoning), ``label_verdict``, reasoning."""
    if not isinstance(value, Mapping):
        raise BadLine("critic: must be an object")
    elements = value.get("elements", [])
    if not isinstance(elements, list):
        raise BadLine("critic.elements: must be a list")
    for i, item in enumerate(elements):
        where = f"critic.elements[{i}]"
        if not isinstance(item, Mapping):
            raise BadLine(f"{where}: must be an object")
        index = item.get("triplet_index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_triplets:
            raise BadLine(f"{where}.triplet_index: must be an index into the line's {n_triplets} triplet(s), got {index!r}")
        if item.get("role") not in ROLES:
            raise BadLine(f"{where}.role: must be one of {', '.join(ROLES)}, got {item.get('role')!r}")
        if item.get("verdict") not in VERDICTS:
            raise BadLine(f"{where}.verdict: must be one of {', '.join(VERDICTS)}, got {item.get('verdict')!r}")
        _text(item.get("reasoning"), f"{where}.reasoning")
    if value.get("label_verdict") is not None and value["label_verdict"] not in VERDICTS:
        raise BadLine(f"critic.label_verdict: must be one of {', '.join(VERDICTS)}, got {value['label_verdict']!r}")
    suggested = value.get("suggested_label")
    if suggested is not None and taxonomy.canonical(suggested) is None:
        raise BadLine(f"critic.suggested_label: unknown emotion {suggested!r}; expected one of {', '.join(taxonomy.labels)}")
    for key in ("label_reasoning", "reasoning"):
        _text(value.get(key), f"critic.{key}")
    # Stored as given, extra keys included (parse_line checked every value of the line),
    # but for a suggested label named by a synonym: the label it names.
    out = dict(value)
    if suggested is not None:
        out["suggested_label"] = taxonomy.canonical(suggested)
    return out


def parse_line(raw: bytes, options: ImportOptions) -> ParsedLine:
    """JSON and the keys that need no image: raises :class:`BadLine`."""
    try:
        data = load_json(raw)
    except TextPolicyError as exc:
        raise BadLine(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise BadLine(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except JSONDecodeError as exc:
        raise BadLine(f"malformed JSON: {exc.msg} (column {exc.colno})") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (4300)
        raise BadLine(f"malformed JSON: {str(exc).split(';')[0]}") from exc
    except RecursionError as exc:
        raise BadLine("malformed JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise BadLine(f"not a JSON object (got {type(data).__name__})")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise BadLine(f"unknown key(s) {', '.join(map(repr, unknown))}; see docs/emoverse-jsonl.md")
    if "image" not in data:
        raise BadLine('missing "image" (the image path, relative to --images-dir)')
    image = data["image"]
    if not isinstance(image, str) or is_blank(image):
        raise BadLine("image: must be a non-empty relative path")
    if len(image) > MAX_IMAGE_NAME:
        raise BadLine(f"image: path longer than {MAX_IMAGE_NAME} characters")
    source = data.get("source", options.source_default)
    if not isinstance(source, str) or source not in _SOURCES:
        raise BadLine(f"unknown source {source!r}; expected one of {', '.join(ImageSource.values)}")
    has_annotation = any(data.get(key) is not None for key in ANNOTATION_KEYS)
    annotator = parse_annotator(data.get("annotator"), approved=options.approved) if has_annotation else None
    critic = data.get("critic")
    if critic is not None:
        triplets = data.get("triplets")
        critic = validate_critic(critic, len(triplets) if isinstance(triplets, list) else 0, options.taxonomy)
    return ParsedLine(data=data, image=image, source=source, annotator=annotator, critic=critic)


def resolve_image_path(images_dir: Path, name: str) -> Path:
    """``name`` inside ``images_dir`` (already resolved); refuses anything that leads outside it."""
    if "\x00" in name:
        raise BadLine("image: path contains a NUL character")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive:
        raise BadLine(f"image: absolute path {name!r} refused; paths are relative to --images-dir")
    if ".." in posix.parts:
        raise BadLine(f"image: path {name!r} escapes --images-dir ('..')")
    try:
        resolved = Path(os.path.realpath(images_dir.joinpath(*posix.parts)))
    except (UnicodeError, ValueError) as exc:  # a lone surrogate the file system encoding refuses
        raise BadLine(f"image: path {name!r} is not a usable file name ({exc})") from exc
    if not resolved.is_relative_to(images_dir):
        raise BadLine(f"image: path {name!r} escapes --images-dir (it resolves to {resolved}, through a symbolic link)")
    return resolved
