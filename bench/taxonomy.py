"""Benchmark of the CES validation per taxonomy: process CPU time per CES.

What a taxonomy costs the importer and the API: ``validate_ces`` strict (the API, the
review services) and with the synonym map (the importer), for Mikels' eight and for
Ekman's six named by synonyms (``scared``, ``joy``...). No database is touched.

    python bench/taxonomy.py
    python bench/taxonomy.py --n 200000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")

import django  # noqa: E402

django.setup()

from annotations.validation import validate_ces  # noqa: E402
from core.vocabulary import EKMAN, MIKELS  # noqa: E402

MIKELS_CES = {"label": "fear", "confidence": 0.7, "distribution": {e: (0.72 if e == "fear" else 0.04) for e in MIKELS.labels}}
EKMAN_BY_SYNONYMS = {"label": "scared", "confidence": 0.7,
                     "distribution": {"angry": 0.1, "disgust": 0.1, "scared": 0.5, "joy": 0.1, "sad": 0.1, "surprise": 0.1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="CES values per case")
    n = parser.parse_args().n
    for name, ces, taxonomy, synonyms in (
        ("mikels, strict (API)", MIKELS_CES, MIKELS, False),
        ("mikels, synonyms (import)", MIKELS_CES, MIKELS, True),
        ("ekman by synonyms (import)", EKMAN_BY_SYNONYMS, EKMAN, True),
    ):
        start = time.process_time()
        for _ in range(n):
            validate_ces(ces, taxonomy, synonyms=synonyms)
        print(f"{name}: {(time.process_time() - start) / n * 1e6:.2f} µs CPU per CES ({n:,} values)")


if __name__ == "__main__":
    main()
