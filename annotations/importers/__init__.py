"""Importers of annotation files, one module per format.

``emoverse_jsonl``: the EmoVerse JSONL format (docs/emoverse-jsonl.md), used by
``manage.py import_emoverse`` and by the demo; ``emoverse_parse`` reads one of its
lines, ``lines`` the file, ``routing`` sets the imported images' status.
"""

from annotations.importers.emoverse_jsonl import (
    ImportReport,
    LineError,
    import_emoverse_jsonl,
)

__all__ = ["ImportReport", "LineError", "import_emoverse_jsonl"]
