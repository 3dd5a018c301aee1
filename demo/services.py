"""The demo: users with fixed passwords and a dataset a person can review at once.

The photographs are files inside the scikit-image package (``skimage/data/*.png``,
read directly from the installed package, never through its pooch downloader),
so nothing is fetched. For each one the demo writes three EmoVerse JSONL lines —
two VLM annotators (``gpt-4o``, ``gemini-2.5-pro``) that sometimes disagree, and
the pipeline's merged answer with grounded boxes, masks computed from the pixels
and a critic's verdicts — and imports the file through the same service as
``manage.py import_emoverse``. The answers are hand-written examples in the
annotators' format (:mod:`demo.scenes`); no model is called.

The demo's phrase embeddings ship with it (``demo/phrase_embeddings.npz``: all-MiniLM-L6-v2
vectors, float16, written by the worker backend with ``manage.py demo --write-embeddings``)
and are stored before the import, so the review page pairs the annotators' paraphrases by
meaning even where the web install has no sentence-transformers (it then cannot embed
anything new; see ``ml.embeddings``).

Everything is idempotent: a second run finds the users, the files and every
line already there. The dataset keeps one review per item; for agreement studies
set ``reviews_per_item`` and ``overlap_fraction`` on it (Django admin).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from PIL import Image as PILImage
from scipy import ndimage
from skimage import color, filters, measure, morphology

from annotations.domain import PIPELINE_AUTHOR
from demo.qa import demo_qa_load
from annotations.importers import ImportReport, import_emoverse_jsonl
from annotations.phrase_embeddings import missing_phrases, phrase_embeddings_store, phrase_model_name
from annotations.roles import ensure_role_groups
from annotations.services import dataset_get_or_create
from core.alignment import phrase_key
from core.masks import encode_mask
from core.triplets import PhraseTriplet
from core.vocabulary import ROLES
from demo.scenes import (
    SCENES,
    Answer,
    Grounded,
    Scene,
    SceneTriplet,
    Segment,
)
from ml.config import get_registry
from ml.stages.calibration import calibrate_and_merge
from ml.stages.types import AnnotatorResult, BackendNotConfigured

DEMO_EMBEDDINGS = Path(__file__).with_name("phrase_embeddings.npz")
DEMO_DATASET = "demo"
DEMO_DATASET_NAME = "Demo: scikit-image photographs"
DEMO_DESCRIPTION = (
    "Eleven photographs bundled with scikit-image. The pre-annotations are hand-written examples in the format of "
    "two VLM annotators (gpt-4o, gemini-2.5-pro), the pipeline's merged answer with boxes and masks (masks computed "
    "from the pixels), and a critic's verdicts; no model was called."
)
PROMPT_VERSION = "annotate-v1"
CRITIC_MODEL, CRITIC_PROMPT_VERSION = "gpt-4o", "critic-v1"
PIPELINE_VERSION = "demo"
MIN_BLOB_PIXELS = 30
MIN_SOLIDITY = 0.8
# A whole-image background gets the rest of the image as its mask only around a subject this large.
MIN_SUBJECT_SHARE = 0.1  # a blob kept with ``many`` must be compact (coins), not a strip of background


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str  # fixed, for the demo only: printed by ``manage.py demo``
    roles: tuple[str, ...]
    superuser: bool = False


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("reviewer", "review-demo-1", ("reviewer",)),
    DemoUser("reviewer2", "review-demo-2", ("reviewer",)),
    DemoUser("adjudicator", "adjudicate-demo", ("adjudicator", "reviewer")),
    DemoUser("researcher", "research-demo", ("researcher",)),
    DemoUser("rater", "rate-demo", ("rater",)),
    DemoUser("admin", "admin-demo", ("admin",), superuser=True),
)


# --- pixels and masks ------------------------------------------------------------------


def bundled_photo(name: str) -> bytes:
    """The bytes of a photograph shipped inside the installed scikit-image package."""
    path = resources.files("skimage.data") / name
    if not path.is_file():
        raise FileNotFoundError(
            f"scikit-image's bundled file {name} is missing from {path}; reinstall scikit-image (requirements.txt)"
        )
    return path.read_bytes()


def rgb_pixels(data: bytes) -> np.ndarray:
    """HWC uint8 RGB pixels of an image file; transparency is flattened onto white."""
    image = PILImage.open(io.BytesIO(data))
    if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = PILImage.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return np.asarray(flat)
    return np.asarray(image.convert("RGB"))


def _otsu_side(channel: np.ndarray, side: str) -> np.ndarray:
    threshold = filters.threshold_otsu(channel)
    return channel > threshold if side == ">" else channel <= threshold


def _auto_foreground(lab: np.ndarray) -> np.ndarray:
    """The Otsu side of the Lab channel that best separates the box's centre from its rim."""
    h, w = lab.shape[:2]
    rim = np.zeros((h, w), dtype=bool)
    b = max(2, min(h, w) // 20)
    rim[:b], rim[-b:], rim[:, :b], rim[:, -b:] = True, True, True, True
    centre = np.zeros((h, w), dtype=bool)
    centre[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    best, best_score = np.zeros((h, w), dtype=bool), -np.inf
    for c in range(3):
        channel = lab[..., c]
        if np.ptp(channel) < 1e-3:
            continue
        for side in (">", "<="):
            candidate = _otsu_side(channel, side)
            score = candidate[centre].mean() - candidate[rim].mean()
            if score > best_score:
                best, best_score = candidate, score
    return best


def segment_in_box(
    pixels: np.ndarray, box: tuple[int, int, int, int], segment: Segment
) -> tuple[np.ndarray, float] | None:
    """A boolean ``(H, W)`` mask of the object inside ``box`` (XYXY pixels) and a score in [0, 1],
    or None when nothing stands out.

    Otsu thresholds on the smoothed Lab channels of the box (the ``segment.hints``,
    or the channel that best separates centre from rim), then opening and closing,
    the largest blob (every compact blob with ``segment.many``) and hole filling.
    The score says how distinct the masked pixels are from the rest of the box.
    """
    x0, y0, x1, y1 = box
    lab = color.rgb2lab(pixels[y0:y1, x0:x1])
    smooth = np.stack([filters.gaussian(lab[..., c], sigma=2) for c in range(3)], axis=-1)
    if segment.hints:
        foreground = np.zeros(smooth.shape[:2], dtype=bool)
        for channel, side in segment.hints:
            foreground |= _otsu_side(smooth[..., "Lab".index(channel)], side)
    else:
        foreground = _auto_foreground(smooth)
    foreground = morphology.closing(morphology.opening(foreground, morphology.disk(2)), morphology.disk(3))
    labels = measure.label(foreground)
    regions = [r for r in measure.regionprops(labels) if r.area >= MIN_BLOB_PIXELS]
    if not regions:
        return None
    largest = max(r.area for r in regions)
    if segment.many:
        keep = [r.label for r in regions if r.area >= 0.02 * largest and r.solidity >= MIN_SOLIDITY]
    else:
        keep = [next(r.label for r in regions if r.area == largest)]
    inside = ndimage.binary_fill_holes(np.isin(labels, keep))
    if not inside.any():
        return None
    mask = np.zeros(pixels.shape[:2], dtype=bool)
    mask[y0:y1, x0:x1] = inside
    return mask, _distinctness(lab, inside)


def _distinctness(lab: np.ndarray, inside: np.ndarray) -> float:
    """Mean Lab distance between the masked pixels and the rest of the box, squashed to [0, 1]."""
    if inside.all():
        return 0.5
    distance = float(np.linalg.norm(lab[inside].mean(axis=0) - lab[~inside].mean(axis=0)))
    return round(distance / (distance + 20.0), 3)


# --- lines ---------------------------------------------------------------------------------


def _box(grounded: Grounded, width: int, height: int) -> tuple[int, int, int, int]:
    return grounded.box or (0, 0, width, height)


def _grounded_triplet(triplet: SceneTriplet, pixels: np.ndarray) -> dict:
    height, width = pixels.shape[:2]
    subject_box = _box(triplet.subject, width, height)
    subject: dict = {"phrase": triplet.subject.phrase, "box": list(subject_box)}
    found = segment_in_box(pixels, subject_box, triplet.subject.segment) if triplet.subject.segment else None
    subject_mask = None
    if found is not None:
        subject_mask, score = found
        subject.update(mask=encode_mask(subject_mask), mask_score=score)
    background: dict = {"phrase": triplet.background.phrase, "box": list(_box(triplet.background, width, height))}
    if triplet.background.box is None and subject_mask is not None and subject_mask.mean() >= MIN_SUBJECT_SHARE:
        background["mask"] = encode_mask(~subject_mask)  # the whole scene around a large subject
    return {"background": background, "attribute": {"phrase": triplet.attribute}, "subject": subject}


def _critic(scene: Scene) -> dict:
    note = scene.critic
    elements = []
    for index, triplet in enumerate(scene.triplets):
        phrases = {"background": triplet.background.phrase, "attribute": triplet.attribute, "subject": triplet.subject.phrase}
        for role in ROLES:
            verdict, reasoning = note.doubts.get((index, role), ("ok", f"'{phrases[role]}' is visible and fits its role."))
            elements.append({"triplet_index": index, "role": role, "verdict": verdict, "reasoning": reasoning})
    return {
        "model": CRITIC_MODEL, "prompt_version": CRITIC_PROMPT_VERSION, "elements": elements,
        "label_verdict": note.label_verdict, "label_reasoning": note.label_reasoning, "reasoning": note.reasoning,
        "suggested_label": note.suggested_label,
    }


def _annotator_result(name: str, answer: Answer) -> AnnotatorResult:
    return AnnotatorResult(
        model=name, prompt_version=PROMPT_VERSION, triplets=tuple(PhraseTriplet(*t) for t in answer.triplets),
        distribution=answer.distribution, rationale=answer.rationale, raw_output="",
    )


def scene_lines(scene: Scene, pixels: np.ndarray) -> list[dict]:
    """The scene's EmoVerse JSONL lines: each annotator's answer, then the pipeline's grounded merge."""
    lines = []
    for name, answer in scene.answers.items():
        label = max(answer.distribution, key=answer.distribution.get)
        lines.append({
            "image": scene.file, "source": "web",
            "triplets": [dict(zip(ROLES, t)) for t in answer.triplets],
            "ces": {"label": label, "confidence": answer.distribution[label], "distribution": answer.distribution},
            "rationale": answer.rationale,
            "annotator": {"kind": "model", "name": name, "prompt_version": PROMPT_VERSION},
        })
    merged = calibrate_and_merge([_annotator_result(n, a) for n, a in scene.answers.items()], temperatures={})
    lines.append({
        "image": scene.file, "source": "web",
        "triplets": [_grounded_triplet(t, pixels) for t in scene.triplets],
        "ces": {"label": merged.label, "confidence": round(merged.confidence, 6),
                "distribution": {k: round(v, 6) for k, v in merged.merged.items()}},
        "rationale": scene.rationale,
        "annotator": {"kind": "model", "name": PIPELINE_AUTHOR, "prompt_version": PROMPT_VERSION,
                      "pipeline_version": PIPELINE_VERSION},
        "critic": _critic(scene),
    })
    return lines


def demo_write(folder: Path) -> Path:
    """Copy the photographs to ``folder/images`` and write ``folder/demo.jsonl``; returns the JSONL path."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    jsonl = folder / "demo.jsonl"
    with open(jsonl, "w", encoding="utf-8") as out:
        for scene in SCENES:
            data = bundled_photo(scene.file)
            target = images / scene.file
            if not target.is_file() or target.read_bytes() != data:
                target.write_bytes(data)
            out.writelines(json.dumps(line, separators=(",", ":")) + "\n" for line in scene_lines(scene, rgb_pixels(data)))
    return jsonl


# --- phrase embeddings -----------------------------------------------------------------------


def demo_phrases() -> list[str]:
    """Every phrase of the demo's lines (annotators' and pipeline's), normalised, sorted."""
    phrases = set()
    for scene in SCENES:
        phrases.update(p for answer in scene.answers.values() for t in answer.triplets for p in t)
        phrases.update(p for t in scene.triplets for p in (t.background.phrase, t.attribute, t.subject.phrase))
    return sorted({phrase_key(p) for p in phrases})


@dataclass(frozen=True)
class DemoEmbeddings:
    model: str
    phrases: int  # the demo's phrases
    stored: int  # newly stored from the shipped file
    missing: int  # demo phrases still without an embedding of the configured model


def demo_embeddings_store() -> DemoEmbeddings:
    """Store the shipped embeddings of the demo's phrases (only when the configured phrase
    model is the one they were computed with)."""
    name = phrase_model_name()
    phrases = demo_phrases()
    stored = 0
    with np.load(DEMO_EMBEDDINGS, allow_pickle=False) as shipped:
        if str(shipped["model"]) == name:
            stored = phrase_embeddings_store(model_name=name, phrases=[str(p) for p in shipped["phrases"]],
                                             vectors=shipped["vectors"].astype(np.float32))
    return DemoEmbeddings(name, len(phrases), stored, len(missing_phrases(phrases, model_name=name)))


def demo_embeddings_write(path: Path = DEMO_EMBEDDINGS) -> Path:
    """Embed the demo's phrases with the configured phrase embedder (worker side: needs
    requirements-ml.txt) and write them as the shipped file."""
    embedder = get_registry().embedder()
    if embedder is None:
        raise BackendNotConfigured("the phrase embedder is turned off (EMOVERSE_ML['embedder'] is null)")
    phrases = demo_phrases()
    vectors = embedder.embed(phrases)
    with open(path, "wb") as out:
        np.savez_compressed(out, model=np.array(embedder.name), phrases=np.array(phrases),
                            vectors=vectors.astype(np.float16))
    return path


# --- users and the whole demo -----------------------------------------------------------------


def demo_users_ensure() -> tuple[DemoUser, ...]:
    """Create the demo users (or reset them to their demo password and roles)."""
    ensure_role_groups()
    model = get_user_model()
    for demo in DEMO_USERS:
        user, _ = model.objects.get_or_create(username=demo.username, defaults={"email": f"{demo.username}@demo.invalid"})
        user.set_password(demo.password)
        user.is_active = True
        user.is_staff = user.is_superuser = demo.superuser
        user.save()
        user.groups.add(*Group.objects.filter(name__in=demo.roles))
    return DEMO_USERS


def demo_load(*, folder: Path, run_by: str = "demo") -> ImportReport:
    """Users, the demo dataset, its phrase embeddings and its import (idempotent). Returns the import's report."""
    demo_users_ensure()
    demo_embeddings_store()
    dataset, created = dataset_get_or_create(slug=DEMO_DATASET, name=DEMO_DATASET_NAME)
    if created:
        dataset.description = DEMO_DESCRIPTION
        dataset.save(update_fields=["description"])
    jsonl = demo_write(folder)
    with open(jsonl, "rb") as stream:
        report = import_emoverse_jsonl(
            stream=stream, images_dir=folder / "images", dataset_slug=DEMO_DATASET, run_by=run_by, file_name=str(jsonl),
        )
    demo_qa_load(dataset=dataset)
    return report
