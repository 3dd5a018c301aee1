"""Seeded agreement inputs for tests/core/test_agreement_parity.py, and the recorder of
their outputs (tests/data/agreement_scores.json):

    python tests/core/agreement_cases.py > tests/data/agreement_scores.json

Run it with the implementation whose outputs are the reference (the file holds those of
the numpy and dataclass implementation before issue 16's rewrite). Embeddings have at most
two non-zero components, so every cosine is the same float on any machine (BLAS order)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))  # the implementation being recorded: the working directory's

from core.alignment import PhraseVectors, align_triplets
from core.priority import annotator_agreement
from core.triplets import PhraseTriplet
from core.vocabulary import EKMAN, EMOTIONS

WORDS = ["beach", "Stormy", "the", "dark", "clouds", "a", "lone", "fisherman", "city", "neon", "of", "crowd",
         "garage", "metal", "shelves", "with", "Café", "Ｃａｆé", "ride", "ready,", "to", "old", "dog", "-"]
N_CASES = 400


def _phrase(rng: random.Random) -> str:
    if rng.random() < 0.08:
        return ""
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
    return rng.choice(["", " ", "  "]) + rng.choice([" ", "  ", "\t"]).join(words)


def _distribution(rng: random.Random, labels: tuple[str, ...]) -> dict[str, float]:
    kind = rng.random()
    if kind < 0.15:
        return {e: float(e == rng.choice(labels)) for e in labels}  # one-hot-ish, ties possible
    if kind < 0.25:
        return {e: 1.0 / len(labels) for e in labels}
    return {e: 0.0 if rng.random() < 0.2 else rng.random() ** rng.randint(1, 4) for e in labels}


def _vector(rng: random.Random) -> list[float]:
    v = [0.0] * 6
    for i in rng.sample(range(6), rng.randint(1, 2)):
        v[i] = float(rng.randint(-4, 4) or 1)
    return v


def case(seed: int) -> dict:
    """One scoring input: 2 or 3 answers of 0-3 phrase triplets, distributions over Mikels'
    or Ekman's labels, embeddings for some phrases."""
    rng = random.Random(seed)
    labels = EMOTIONS if rng.random() < 0.7 else EKMAN.labels
    pool = [_phrase(rng) for _ in range(rng.randint(3, 9))]
    answers = [
        (tuple(PhraseTriplet(*(rng.choice(pool) for _ in range(3))) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 3]))),
         _distribution(rng, labels))
        for _ in range(2 if rng.random() < 0.8 else 3)
    ]
    embedded = {p: _vector(rng) for p in pool if p.strip() and rng.random() < 0.5}
    return {"answers": answers, "labels": labels, "vectors": PhraseVectors(embedded)}


def outputs(seed: int) -> dict:
    c = case(seed)
    agreement = annotator_agreement(c["answers"], c["vectors"], c["labels"])
    a, b = ([dict(t.elements(), key=f"k{i % 2}" if i == 2 else "") for i, t in enumerate(ts)] for ts, _ in c["answers"][:2])
    alignment = align_triplets(a, b, c["vectors"])
    index = {id(t): i for i, t in enumerate(a)} | {id(t): i for i, t in enumerate(b)}
    return {
        "label_match": agreement.label_match,
        "distance": agreement.distribution_distance.hex(),
        "overlap": agreement.triplet_overlap.hex(),
        "paired_by": agreement.triplets_paired_by,
        "score": agreement.score.hex(),
        "pairs": [[index.get(id(p.a)), index.get(id(p.b)), p.paired_by, p.similarity.hex()] for p in alignment.pairs],
        "words_only": sorted(alignment.words_only),
    }


if __name__ == "__main__":
    json.dump({str(seed): outputs(seed) for seed in range(N_CASES)}, sys.stdout, indent=0, ensure_ascii=False)
    print()
