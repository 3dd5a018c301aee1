"""The manifest of an export snapshot: what, which filter, how many, checksums, who, when, which app.

``final_annotation`` says in words which annotation of an image was exported;
``left_out`` counts what the export did not take, by reason (:func:`left_out`);
``run_by`` is the user, or the OS account that ran ``export_dataset`` without ``--user``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from exports.models import ExportSnapshot
from exports.writers import WriterResult

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2  # 2: ``left_out``; COCO and Parquet leave rejected elements out by default (``taxonomy``: an added key)
_FINAL = "the adjudicated annotation, else the approved human review or curated import"
FINAL_RULE = f"{_FINAL} (human-approved only)"
FINAL_RULE_AUTO = (f"{_FINAL}, else the pipeline's auto-accepted model answer "
                   "(machine-accepted, not human-approved; counted in counts.machine_accepted)")
QA_RULE = {
    "approved": "the current version of each QA pair, accepted or edited by a reviewer only",
    "current": "the current version of each QA pair, whatever its review status (status and reject reason included)",
}
_LIBRARIES = ("Django", "pyarrow", "pycocotools", "numpy")


def file_entry(folder: Path, name: str, sha256: str | None = None) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of ``folder/name``: ``sha256`` when the writer hashed the file
    as it wrote it, else read in blocks."""
    path = folder / name
    if sha256 is None:
        with open(path, "rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"path": name, "bytes": path.stat().st_size, "sha256": sha256}


def _git_commit(root: Path) -> str | None:
    """The checked-out commit, read from ``.git`` (no subprocess); None outside a checkout."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split()[0]
    except OSError:
        return None
    return None


@functools.cache
def app_version() -> dict[str, Any]:
    """``EMOVERSE_VERSION`` when set in settings, the git commit, and the versions of the encoding libraries."""
    libraries = {}
    for name in _LIBRARIES:
        try:
            libraries[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            libraries[name] = None
    return {
        "version": getattr(settings, "EMOVERSE_VERSION", None),
        "commit": _git_commit(Path(settings.BASE_DIR)),
        "libraries": libraries,
    }


def left_out(counts: dict[str, Any]) -> dict[str, int]:
    """What the export did not take, by reason (docs/export.md, "What is left out").

    ``rejected_elements``: elements a reviewer or adjudicator rejected, left out
    of COCO and Parquet (option ``include_rejected`` keeps them; JSONL always
    does); ``images_without_final_annotation``: no person approved an answer
    (model-only); ``images_auto_accepted_only``: only the pipeline accepted them
    (filter ``include_auto_accepted`` takes them); ``images_outside_filter``: their
    final annotation's label or date did not match the filter; ``images_still_in_review``:
    the image is still in review, so the reviews in so far are neither final nor shown to anyone
    (independent reviews).
    """
    return {
        "rejected_elements": counts["rejected_elements_left_out"],
        "images_without_final_annotation": counts["skipped_without_final"],
        "images_auto_accepted_only": counts["skipped_auto_accepted"],
        "images_outside_filter": counts["skipped_by_filter"],
        "images_still_in_review": counts.get("skipped_in_review", 0),
    }


def build_manifest(
    *, snapshot: ExportSnapshot, folder: Path, started_at: datetime, counts: dict[str, Any], results: list[WriterResult]
) -> dict[str, Any]:
    """The manifest of a finished attempt whose files lie in ``folder`` (hashes computed here)."""
    writer_counts = {k: v for result in results for k, v in result.counts.items()}
    user = snapshot.created_by
    auto = bool(snapshot.filters.get("include_auto_accepted"))
    qa_selection = snapshot.options.get("pairs") if "pairs_left_out" in counts else None
    return {
        "manifest_version": MANIFEST_VERSION,
        "dataset": snapshot.dataset.slug,
        "snapshot": snapshot.version,
        "format": snapshot.format,
        "taxonomy": snapshot.dataset.get_taxonomy().to_spec(),
        "filters": snapshot.filters,
        "final_annotation": QA_RULE[qa_selection] if qa_selection else FINAL_RULE_AUTO if auto else FINAL_RULE,
        "options": snapshot.options,
        "counts": {**counts, **writer_counts},
        "left_out": {"qa_pairs_not_selected": counts["pairs_left_out"]} if qa_selection else left_out(counts),
        "files": [file_entry(folder, name, result.sha256.get(name)) for result in results for name in result.files],
        "created_by": {"id": user.pk, "username": user.get_username()} if user else None,
        "run_by": snapshot.run_by or None,
        "created_at": snapshot.created_at.isoformat(),
        "started_at": started_at.isoformat(),
        "finished_at": timezone.now().isoformat(),
        "app_version": app_version(),
    }
