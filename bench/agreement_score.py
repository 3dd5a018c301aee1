"""CPU per agreement score of the importer's routing (:func:`core.priority.annotator_agreement`).

    python bench/agreement_score.py [--cases 2000] [--repeat 5] [--profile]

Realistic routing inputs (seeded): two model annotators, 1-3 B-A-S phrase triplets each
drawn from overlapping phrase pools (case and spacing variants, shared words), CES
distributions over Mikels' eight labels; scored once without stored embeddings (a fresh
import), once with 384-d embeddings for part of the phrases, and once with phrases that no
earlier score saw (each case's phrases carry its number: nothing is reused across scores);
last, the lines of ``bench/import.py`` (one and the same triplet from both, peaked distributions). Prints the best of
``--repeat`` runs in µs of process CPU per score; ``--profile`` prints cProfile's top.
Run it from another checkout's root (``python /path/to/bench/agreement_score.py``) to
time that checkout's code: the packages are imported from the working directory.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the checkout being timed

import numpy as np

from core.alignment import NO_VECTORS, PhraseVectors
from core.priority import annotator_agreement
from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS

BACKGROUNDS = ["stormy beach at dusk", "city street", "Cluttered garage with metal shelves", "a quiet forest", "the garage", "sunny park"]
ATTRIBUTES = ["dark heavy clouds", "neon lights", "gleaming, ready to ride", "soft light", "heavy clouds", "bright colours"]
SUBJECTS = ["lone fisherman", "crowd", "motorbike", "old dog", "a fisherman", "children playing"]


def _answer(rng: random.Random, tag: str = "") -> tuple[tuple[PhraseTriplet, ...], dict[str, float]]:
    triplets = tuple(PhraseTriplet(*(rng.choice(pool) + tag for pool in (BACKGROUNDS, ATTRIBUTES, SUBJECTS)))
                     for _ in range(rng.randint(1, 3)))
    weights = [rng.random() ** 3 for _ in EMOTIONS]
    return triplets, {e: w / sum(weights) for e, w in zip(EMOTIONS, weights)}


def _peaked(rng: random.Random) -> dict[str, float]:
    label, confidence = rng.choice(EMOTIONS), rng.uniform(0.4, 0.95)
    return {e: confidence if e == label else (1 - confidence) / (len(EMOTIONS) - 1) for e in EMOTIONS}


def run(cases: int, repeat: int) -> None:
    rng = random.Random(0)
    inputs = [[_answer(rng), _answer(rng)] for _ in range(cases)]
    embed = np.random.default_rng(0)
    vectors = PhraseVectors({p: embed.normal(size=384) for p in BACKGROUNDS[:4] + ATTRIBUTES[:4] + SUBJECTS[:4]})
    fresh = [[[_answer(rng, f" {n}-{i}"), _answer(rng, f" {n}-{i}")] for i in range(cases)] for n in range(repeat)]
    same = PhraseTriplet("stormy sea", "dark, churning", "small boat")
    import_lines = [[((same,), _peaked(rng)), ((same,), _peaked(rng))] for _ in range(cases)]
    for name, found, batches in (("no embeddings", NO_VECTORS, [inputs] * repeat),
                                 ("some embeddings", vectors, [inputs] * repeat),
                                 ("no embeddings, new phrases", NO_VECTORS, fresh),
                                 ("bench/import.py's lines", NO_VECTORS, [import_lines] * repeat)):
        best = float("inf")
        for batch in batches:
            start = time.process_time()
            for answers in batch:
                annotator_agreement(answers, found, EMOTIONS)
            best = min(best, time.process_time() - start)
        print(f"{name}: {best / cases * 1e6:.1f} µs CPU per score (best of {repeat} x {cases})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats
        with cProfile.Profile() as profile:
            run(args.cases, 1)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    else:
        run(args.cases, args.repeat)


if __name__ == "__main__":
    main()
