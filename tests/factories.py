"""factory-boy factories shared by every test package.

Images are real files (small PNGs written to the test's media folder), and
annotations are created through ``annotations.services.annotation_create`` so
the factories never bypass the domain rules.
"""

from __future__ import annotations

import hashlib
import io

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from annotations.models import AnnotationKind, Dataset, Image, ImageSource, ImageStatus
from annotations.services import annotation_create
from annotations.validation import validate_annotation
from core.vocabulary import EMOTIONS


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A small, deterministic, distinct-per-seed RGB PNG."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def rect_mask_rle(width: int, height: int, box: tuple[int, int, int, int]) -> dict:
    """COCO RLE (compressed, str counts) of a filled rectangle ``box`` (XYXY, pixels)."""
    m = np.zeros((height, width), dtype=np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def distribution_for(label: str, confidence: float = 0.72) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(EMOTIONS) - 1)
    return {e: (confidence if e == label else rest) for e in EMOTIONS}


def annotation_payload(width: int, height: int, *, label: str = "fear", confidence: float = 0.72,
                       with_mask: bool = True, subject_phrase: str = "small boat") -> dict:
    """An EmoVerse JSONL annotation object for an image of the given size."""
    sx0, sy0, sx1, sy1 = width // 4, height // 4, width // 2, height // 2
    subject = {"phrase": subject_phrase, "box": [sx0, sy0, sx1, sy1], "box_score": 0.8}
    if with_mask:
        subject["mask"] = rect_mask_rle(width, height, (sx0, sy0, sx1, sy1))
        subject["mask_score"] = 0.9
    return {
        "triplets": [
            {
                "background": {"phrase": "stormy sea", "box": [0, 0, width, height // 2]},
                "attribute": {"phrase": "dark, churning"},
                "subject": subject,
            }
        ],
        "ces": {"label": label, "confidence": confidence, "distribution": distribution_for(label, confidence)},
        "rationale": "The dark waves around a tiny boat evoke fear.",
    }


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.django.Password("pw-for-tests-123")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for name in extracted or []:
            self.groups.add(Group.objects.get_or_create(name=name)[0])


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"dataset-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    # No calibration audit unless a test asks for one: the queue then serves by priority alone.
    audit_fraction = 0.0


def audit_draw_for(i: int, *, held_out: bool | None = None) -> float:
    """A fixed ``Image.audit_draw`` for the ``i``-th image of a test: distinct per ``i`` (below
    1), held out of a calibration fit (``ml.calibration_fits.is_held_out``) when ``i % 3 == 2``
    unless ``held_out`` says otherwise. Tests that fit temperatures pass it so the 70/30
    split never depends on database ids or test order."""
    held_out = i % 3 == 2 if held_out is None else held_out
    return ((i % 1000) + (0.1 if held_out else 0.6)) / 1000


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    class Params:
        seed = factory.Sequence(lambda n: n)
        content = factory.LazyAttribute(lambda o: png_bytes(o.width, o.height, o.seed))

    dataset = factory.SubFactory(DatasetFactory)
    width = 64
    height = 48
    original_name = factory.Sequence(lambda n: f"img/{n:05d}.png")
    file = factory.LazyAttribute(lambda o: ContentFile(o.content, name=o.original_name.split("/")[-1]))
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(o.content).hexdigest())
    source = ImageSource.EMOSET
    status = ImageStatus.IN_REVIEW
    audit_draw = factory.Sequence(audit_draw_for)


def make_annotation(image: Image, *, kind: str = AnnotationKind.MODEL, author_name: str = "gpt-4o",
                    author_user=None, payload: dict | None = None, **kwargs):
    """Create an annotation version through the real service (validation included, against the
    image's dataset's taxonomy)."""
    payload = payload or annotation_payload(image.width, image.height, **kwargs.pop("payload_kwargs", {}))
    data = validate_annotation(payload, image.width, image.height, image.dataset.get_taxonomy())
    return annotation_create(image=image, data=data, kind=kind, author_name=author_name,
                             author_user=author_user, **kwargs)
