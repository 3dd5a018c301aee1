"""static/review/rle.js agrees with pycocotools in both directions (run through node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

SCRIPT = Path(__file__).parent / "js" / "test_rle.mjs"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node (20+) on PATH")


def _bits(mask: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in mask.reshape(-1))  # row-major


def _random_masks(rng: np.random.Generator):
    for height, width in [(1, 1), (2, 3), (17, 1), (48, 64), (64, 48), (131, 257), (400, 300)]:
        yield np.zeros((height, width), np.uint8)
        yield np.ones((height, width), np.uint8)
        yield (rng.random((height, width)) < 0.5).astype(np.uint8)
        yield (rng.random((height, width)) < 0.02).astype(np.uint8)
        blob = np.zeros((height, width), np.uint8)
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        blob[y0 : y0 + height // 2 + 1, x0 : x0 + width // 3 + 1] = 1
        yield blob


def test_rle_js_matches_pycocotools(tmp_path):
    rng = np.random.default_rng(7)
    cases = []
    for m in _random_masks(rng):
        counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode("ascii")
        cases.append({"height": m.shape[0], "width": m.shape[1], "bits": _bits(m), "counts": counts})
    cases_path, out_path = tmp_path / "cases.json", tmp_path / "out.json"
    cases_path.write_text(json.dumps(cases))

    result = subprocess.run(["node", str(SCRIPT), str(cases_path), str(out_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or result.stdout

    produced = json.loads(out_path.read_text())
    assert len(produced) == 28
    for item in produced:
        h, w = item["height"], item["width"]
        expected = np.array([c == "1" for c in item["bits"]], dtype=np.uint8).reshape(h, w)
        decoded = mask_utils.decode({"size": [h, w], "counts": item["counts"].encode("ascii")})
        np.testing.assert_array_equal(decoded, expected)
        # and the JS string is byte-for-byte pycocotools' own encoding
        assert mask_utils.encode(np.asfortranarray(expected))["counts"].decode("ascii") == item["counts"]
