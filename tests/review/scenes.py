"""A review item that looks like a photo (for the browser tests and their screenshots).

A storm scene — sky, sea, a small boat — with the pipeline's merged annotation
(grounded boxes and masks, a critic verdict per element) and two VLM annotators
that disagree on the label and on the subject's phrase.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from annotations.domain import PIPELINE_AUTHOR
from tests.factories import (
    ImageFactory,
    distribution_for,
    make_annotation,
    rect_mask_rle,
)

WIDTH, HEIGHT = 480, 320
BOAT = (200, 170, 280, 215)  # subject box, XYXY pixels
SEA = (0, 150, WIDTH, HEIGHT)


def scene_png(seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = np.array([70, 78, 96]) * (1 - y) + np.array([150, 150, 160]) * y
    pixels = np.broadcast_to(sky, (height, width, 3)).copy()
    sea_top = SEA[1] * height // HEIGHT
    waves = 10 * np.sin(np.linspace(0, 40, width))[None, :] + rng.normal(0, 6, (height - sea_top, width))
    pixels[sea_top:] = np.stack([25 + waves, 55 + waves, 80 + waves], axis=-1)
    img = PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = (v * width // WIDTH if i % 2 == 0 else v * height // HEIGHT for i, v in enumerate(BOAT))
    draw.polygon([(x0, y0 + 25), (x1, y0 + 25), (x1 - 12, y1), (x0 + 12, y1)], fill=(120, 60, 40))
    draw.line([((x0 + x1) // 2, y0), ((x0 + x1) // 2, y0 + 25)], fill=(230, 230, 230), width=3)
    draw.polygon([((x0 + x1) // 2, y0), ((x0 + x1) // 2 + 28, y0 + 22), ((x0 + x1) // 2, y0 + 22)], fill=(235, 235, 225))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _payload(label: str, subject_phrase: str, *, grounded: bool = True) -> dict:
    subject = {"phrase": subject_phrase}
    background = {"phrase": "stormy sea"}
    if grounded:
        subject.update(box=list(BOAT), box_score=0.81, mask=rect_mask_rle(WIDTH, HEIGHT, BOAT), mask_score=0.9)
        background.update(box=list(SEA), box_score=0.66, mask=rect_mask_rle(WIDTH, HEIGHT, SEA), mask_score=0.7)
    return {
        "triplets": [
            {"background": background, "attribute": {"phrase": "dark, churning waves"}, "subject": subject},
            {"background": {"phrase": "low grey sky"}, "attribute": {"phrase": "heavy"}, "subject": {"phrase": "sail"}},
        ],
        "ces": {"label": label, "confidence": 0.62, "distribution": distribution_for(label, 0.62)},
        "rationale": "The tiny boat among <b>dark</b> waves evokes fear.",
    }


CRITIC = {
    "elements": [
        {"triplet_index": 0, "role": "background", "verdict": "ok", "reasoning": "The sea fills the lower half."},
        {"triplet_index": 0, "role": "attribute", "verdict": "ok", "reasoning": "Waves are visibly rough."},
        {"triplet_index": 0, "role": "subject", "verdict": "ok", "reasoning": "One small boat, centre."},
        {"triplet_index": 1, "role": "subject", "verdict": "doubtful", "reasoning": "The sail is part of the boat, not a subject of its own."},
    ],
    "label_verdict": "ok",
    "label_reasoning": "Isolation in a storm fits fear better than sadness.",
    "reasoning": "Consistent overall; triplet 2 repeats the boat.",
}


def review_item(dataset, *, seed: int = 0, priority: float = 1.0):
    """An image in review: the pipeline's grounded, critic-checked answer plus two annotators."""
    image = ImageFactory(dataset=dataset, width=WIDTH, height=HEIGHT, priority=priority, seed=seed, content=scene_png(seed))
    make_annotation(image, author_name=PIPELINE_AUTHOR, payload=_payload("fear", "small boat"), critic=CRITIC)
    make_annotation(image, author_name="gpt-4o", payload=_payload("fear", "small boat", grounded=False))
    make_annotation(image, author_name="gemini-2.5", payload=_payload("sadness", "lonely fishing boat", grounded=False))
    return image
