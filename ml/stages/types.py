"""Plain data passed between pipeline stages.

No Django here: the stages take and return these frozen dataclasses, and the
``ml/tasks.py`` edge converts them to and from database rows.

Conventions used everywhere in ``ml``:

* images are RGB, ``HWC`` ``uint8`` numpy arrays when pixels are needed;
* boxes are absolute pixel coordinates ``XYXY`` (x0, y0, x1, y1) in the
  coordinate frame of the stored (EXIF-corrected) image, with x0 < x1, y0 < y1;
* masks are COCO RLE dicts ``{"size": [h, w], "counts": str}`` (pycocotools,
  column-major, ``counts`` as a compressed ASCII string);
* emotion distributions are mappings over exactly the labels of the image's dataset's
  taxonomy (``ImageInput.taxonomy``, :class:`core.vocabulary.Taxonomy`; Mikels' eight by
  default) summing to 1; element roles are :data:`core.vocabulary.ROLES`.

Phrase triplets (:class:`core.triplets.PhraseTriplet`) and the annotators' agreement
(:class:`core.priority.AnnotatorAgreement`) are in :mod:`core`, shared with the importer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.priority import AnnotatorAgreement
from core.vocabulary import MIKELS, Taxonomy
from core.triplets import PhraseTriplet


class StageError(Exception):
    """A stage could not produce a valid result.

    ``transient`` errors (timeouts, HTTP 429/5xx, a lost connection) are worth
    retrying with backoff; the others (malformed or refused model output) are
    recorded as a failed stage with ``raw_output`` and ``reason`` and are only
    retried on request.
    """

    def __init__(self, reason: str, *, raw_output: str = "", transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.raw_output = raw_output
        self.transient = transient


class BackendNotConfigured(Exception):
    """A stage has no backend configured, or its weights/endpoint are missing.

    The message says exactly what to configure (setting name, expected path).
    """


@dataclass(frozen=True)
class ImageInput:
    """One image handed to the stages.

    ``data`` holds the encoded file bytes (JPEG/PNG/...) as stored, already
    EXIF-transposed on import; ``width``/``height`` are the pixel size of that
    file. ``key`` is an opaque identifier (the database id as a string). ``taxonomy`` is
    its dataset's emotion vocabulary: prompts list its labels, answers are parsed against
    them, distributions are over them.
    """

    key: str
    data: bytes
    width: int
    height: int
    mime_type: str = "image/jpeg"
    taxonomy: Taxonomy = MIKELS


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class AnnotatorResult:
    """What one VLM annotator said about one image."""

    model: str
    prompt_version: str
    triplets: tuple[PhraseTriplet, ...]
    distribution: Mapping[str, float]
    rationale: str
    raw_output: str
    usage: Usage = field(default_factory=Usage)

    @property
    def label(self) -> str:
        return max(self.distribution, key=lambda k: self.distribution[k])


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated CES for one image, merged from the annotators (and classifier)."""

    raw: Mapping[str, Mapping[str, float]]  # model name -> raw distribution
    calibrated: Mapping[str, Mapping[str, float]]  # model name -> calibrated distribution
    merged: Mapping[str, float]  # final distribution over the taxonomy's labels
    label: str
    confidence: float
    agreement: AnnotatorAgreement | None  # None with a single annotator
    classifier: Mapping[str, float] | None = None  # second opinion, when configured


@dataclass(frozen=True)
class ElementVerdict:
    triplet_index: int
    role: str  # one of ROLES
    verdict: str  # "ok" | "doubtful" | "wrong"
    reasoning: str


@dataclass(frozen=True)
class CriticResult:
    model: str
    prompt_version: str
    elements: tuple[ElementVerdict, ...]
    label_verdict: str  # "ok" | "doubtful" | "wrong"
    label_reasoning: str
    reasoning: str  # the chain of thought as returned
    raw_output: str
    suggested_label: str | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Box:
    """Absolute pixel XYXY box with the detector's score in [0, 1]."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass(frozen=True)
class Detection:
    """The best box for one phrase, or ``box=None`` when nothing passed the thresholds."""

    phrase: str
    box: Box | None


@dataclass(frozen=True)
class Mask:
    """A COCO RLE mask with SAM's predicted IoU as ``score``."""

    rle: Mapping[str, object]  # {"size": [h, w], "counts": str}
    score: float


@dataclass(frozen=True)
class GroundedElement:
    """One element of a merged triplet after grounding and segmentation.

    ``box`` is ``None`` when the grounder found nothing above its thresholds;
    ``mask`` is ``None`` when there was no box to segment.
    """

    role: str  # one of ROLES
    phrase: str
    box: Box | None = None
    mask: Mask | None = None


@dataclass(frozen=True)
class GroundedTriplet:
    """A merged triplet, its elements in :data:`ROLES` order."""

    elements: tuple[GroundedElement, ...]

    def phrases(self) -> dict[str, str]:
        return {e.role: e.phrase for e in self.elements}
