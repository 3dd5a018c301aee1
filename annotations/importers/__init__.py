"""Importers of annotation files, one module per format.

``emoverse_jsonl``: the EmoVerse JSONL format (docs/emoverse-jsonl.md), used by
``manage.py import_emoverse`` and by the demo.
"""

from annotations.importers.emoverse_jsonl import (
    ImportReport,
    LineError,
    import_emoverse_jsonl,
)

__all__ = ["ImportReport", "LineError", "import_emoverse_jsonl"]
