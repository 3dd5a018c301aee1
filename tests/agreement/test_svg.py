"""Server-side SVG plots: well-formed XML, text escaped, geometry from the data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agreement import svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def test_heatmap_is_well_formed_and_escapes_labels():
    root = _parse(svg.heatmap([[3, 1], [0, 2]], ["a<b", "c&d"], row_title='x"y', col_title="<script>"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "a<b" in texts and "c&d" in texts and "columns: <script>" in texts  # parsed back from escaped text
    rects = root.findall("s:rect", NS)
    assert len(rects) == 4
    assert [r.find("s:title", NS).text for r in rects] == ["a<b → a<b: 3", "a<b → c&d: 1", "c&d → a<b: 0", "c&d → c&d: 2"]
    assert "<script>" not in str(svg.heatmap([[1]], ["<script>"], row_title="r", col_title="c"))


def test_histogram_bar_heights_follow_counts():
    root = _parse(svg.histogram([0.0, 0.5, 1.0], [2, 4], x_label="IoU", title="t"))
    heights = [float(r.get("height")) for r in root.findall("s:rect", NS)]
    assert heights == [75.0, 150.0]


def test_reliability_diagram_skips_empty_bins_and_draws_after_points():
    before = {"edges": [0.0, 0.5, 1.0], "counts": [0, 4], "accuracy": [None, 0.5], "confidence": [None, 0.9]}
    after = {"edges": [0.0, 0.5, 1.0], "counts": [4, 0], "accuracy": [0.5, None], "confidence": [0.5, None]}
    root = _parse(svg.reliability_diagram(before, after, title="r"))
    assert len(root.findall("s:rect", NS)) == 1 and len(root.findall("s:circle", NS)) == 1
    assert root.find("s:title", NS).text == "r"
