"""Importers of QA pair files: ``jsonl`` reads docs/qa-jsonl.md (``manage.py import_qa``)."""
