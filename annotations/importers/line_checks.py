"""The checks of a line that need its image but no database, run in the file workers.

A batch's lines are grouped by image content (:mod:`annotations.importers.file_workers`
found and hashed the files). One worker task per content: for a content the dataset does
not hold, :func:`check_new_image` takes the bytes its worker hashed (or reads the file again,
when another worker found it), checks and normalises its pixels
(:func:`annotations.image_files.image_prepare`), checks every line of that content against
the image (:func:`check_line`) and, when at least one line passed, writes the stored file
and thumbnail, named after the first line that passed; for a content the dataset holds,
:func:`check_known_image` checks the lines against the stored size. Results come back per
line, so one bad line never costs the others of its image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from annotations.image_services import ImageCandidate
from annotations.importers import file_workers
from annotations.importers.emoverse_parse import BadLine, ParsedLine
from annotations.importers.file_store import store_image_files
from annotations.models import Dataset
from annotations.validation import AnnotationInput, validate_annotation, validate_triplet_keys
from core.vocabulary import MIKELS, Taxonomy

Checked = tuple[AnnotationInput | None, str | None]  # the annotation (None: image-only line), its fingerprint
Outcome = tuple[bool, Any]  # (True, value) or (False, the exception)


def fingerprint(parsed: ParsedLine, data: AnnotationInput) -> str:
    """Identity of an imported annotation: the same values from the same annotator give the same print."""
    annotator = parsed.annotator
    payload = {
        "kind": annotator.kind,
        "name": annotator.name,
        "prompt_version": annotator.prompt_version,
        "pipeline_version": annotator.pipeline_version,
        "triplets": [
            {"key": t.key, "elements": [e.__dict__ for e in t.elements]} for t in data.triplets
        ],
        "ces": data.ces.__dict__ if data.ces else None,
        "des": hashlib.sha256(data.des).hexdigest() if data.des else None,
        "rationale": data.rationale,
        "critic": parsed.critic,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


def _check_metadata(data: Mapping[str, Any], sha256: str, width: int, height: int) -> None:
    if "sha256" in data and data["sha256"] != sha256:
        raise BadLine(f"sha256: the file's content hash is {sha256}, the line says {data['sha256']!r}")
    for key, actual in (("width", width), ("height", height)):
        if key in data and data[key] != actual:
            raise BadLine(f"{key}: the stored image is {width}x{height} (EXIF orientation applied), the line says {key} {data[key]!r}")


def check_line(parsed: ParsedLine, sha256: str, width: int, height: int, taxonomy: Taxonomy = MIKELS) -> Checked:
    """The checks of a parsed line that need its image's hash and size but no database: its
    annotation and fingerprint (None for an image-only line). Raises :class:`BadLine` or
    :class:`~annotations.errors.InvalidAnnotation`."""
    _check_metadata(parsed.data, sha256, width, height)
    if parsed.annotator is None:
        return None, None
    annotation = validate_annotation(parsed.data, width, height, taxonomy, synonyms=True)
    validate_triplet_keys(annotation.triplets)
    return annotation, fingerprint(parsed, annotation)


def _check_lines(lines: Sequence[ParsedLine], sha256: str, width: int, height: int, taxonomy: Taxonomy) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for line in lines:
        try:
            outcomes.append((True, check_line(line, sha256, width, height, taxonomy)))
        except Exception as exc:  # that line fails with it (logged by the importing process if unforeseen)
            outcomes.append((False, file_workers.portable(exc)))
    return outcomes


def check_known_image(lines: Sequence[ParsedLine], sha256: str, width: int, height: int,
                      taxonomy: Taxonomy = MIKELS) -> list[Outcome]:
    """:func:`check_line` for each line of a content the dataset holds (its stored size)."""
    return _check_lines(lines, sha256, width, height, taxonomy)


def check_new_image(found: file_workers.Found, lines: Sequence[ParsedLine], dataset: Dataset,
                    taxonomy: Taxonomy = MIKELS) -> tuple[Outcome | None, list[Outcome]]:
    """A new content's pixels checked, its lines checked against them and, when one passed,
    its files written: ``(candidate outcome, line outcomes)``. The candidate outcome is None
    when no line passed (nothing written), ``(True, candidate)`` with the stored names, or
    ``(False, exception)`` when the files could not be written. Raises the pixels' error
    (:class:`~annotations.errors.InvalidImage`): every line of the content fails with it."""
    prepared = file_workers.prepare_file(found)
    outcomes = _check_lines(lines, found.sha256, prepared.width, prepared.height, taxonomy)
    first = next((line for line, (ok, _) in zip(lines, outcomes) if ok), None)
    if first is None:
        return None, outcomes
    file_workers.progress("stored")
    candidate = ImageCandidate(sha256=found.sha256, width=prepared.width, height=prepared.height, prepared=prepared)
    try:
        stored: Outcome = (True, store_image_files(dataset=dataset, candidate=candidate, original_name=first.image))
    except Exception as exc:  # the lines that passed fail with it
        stored = (False, file_workers.portable(exc))
    return stored, outcomes


file_workers.register("check_new_image", check_new_image)
file_workers.register("check_known_image", check_known_image)
