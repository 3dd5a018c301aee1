"""Overlapping reviews with known answers, for the agreement report tests.

Ten 64x48 images, three reviewers (carol skips the last image), two model annotators,
adjudications where the reviewers disagree. Every review keeps the model's triplet key,
so elements line up across reviewers by ``(triplet key, role)``.

With ``model_keys="own"`` the scene is what the pipeline stores (``ml.save``): the merged
``pipeline`` answer carries the key the reviews keep, while each annotator's own answer
has fresh triplet keys and no boxes or masks, so its triplets must be aligned to be compared.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Decision, Image
from tests.factories import (
    DatasetFactory,
    ImageFactory,
    UserFactory,
    audit_draw_for,
    distribution_for,
    make_annotation,
    rect_mask_rle,
)

W, H = 64, 48
REVIEWERS = ("alice", "bob", "carol")
LABELS = {
    "alice": ["fear", "fear", "awe", "awe", "sadness", "anger", "amusement", "contentment", "fear", "excitement"],
    "bob": ["fear", "fear", "awe", "contentment", "sadness", "anger", "amusement", "contentment", "sadness", "excitement"],
    "carol": ["fear", "awe", "awe", "awe", "sadness", "disgust", "amusement", "contentment", "fear", None],
}
CONFIDENCE = {
    "alice": [0.9, 0.8, 0.7, 0.6, 0.9, 0.5, 0.8, 0.7, 0.6, 0.9],
    "bob": [0.8, 0.8, 0.6, 0.5, 0.9, 0.6, 0.7, 0.7, 0.4, 0.8],
    "carol": [0.9, 0.6, 0.7, 0.7, 0.8, 0.4, 0.9, 0.6, 0.5, None],
}
MODELS = {
    "gpt-4o": ["fear", "fear", "awe", "awe", "fear", "anger", "amusement", "awe", "fear", "excitement"],
    "qwen": ["fear", "sadness", "contentment", "awe", "sadness", "disgust", "excitement", "contentment", "fear", "awe"],
}
SUBJECT_BOX = (16, 12, 32, 24)
# Image 0: per reviewer, the subject box, its status, and the subject phrase.
IMAGE0_SUBJECT = {
    "alice": ((16, 12, 32, 24), "accepted", "small boat"),
    "bob": ((16, 12, 32, 36), "edited", "Small  Boat"),  # IoU with alice: 192 / 384 = 0.5
    "carol": ((24, 12, 32, 24), "edited", "tiny vessel"),  # IoU with alice 0.5, with bob 96 / 384 = 0.25
}


def majority(values: list[str | None]) -> str | None:
    present = [v for v in values if v is not None]
    best = max(set(present), key=present.count)
    return best if present.count(best) * 2 > len(present) else None


@dataclass
class Scene:
    dataset: object
    images: list[Image]
    users: dict[str, object]
    keys: list[str] = field(default_factory=list)


def payload(label: str | None, key: str, *, confidence: float | None = None, subject_box=SUBJECT_BOX,
            subject_status: str = "accepted", subject_phrase: str = "small boat", attribute_status: str = "accepted") -> dict:
    subject = {"phrase": subject_phrase, "box": list(subject_box), "status": subject_status,
               "mask": rect_mask_rle(W, H, subject_box)}
    out = {
        "triplets": [{
            "key": key,
            "background": {"phrase": "stormy sea", "box": [0, 0, W, H // 2], "status": "accepted"},
            "attribute": {"phrase": "dark, churning", "status": attribute_status},
            "subject": subject,
        }],
        "rationale": "",
    }
    if label is not None:
        out["ces"] = {"label": label, "confidence": confidence, "distribution": distribution_for(label, confidence or 0.7)}
    return out


def annotator_payload(label: str, index: int, model: str) -> dict:
    """An annotator's own answer as ``ml.save`` stores it: its own triplet key, phrases only."""
    out = payload(label, str(uuid.uuid5(uuid.NAMESPACE_OID, f"{model}:{index}")), confidence=0.95)
    for triplet in out["triplets"]:
        for role in ("background", "attribute", "subject"):
            triplet[role] = {"phrase": triplet[role]["phrase"], "status": "pending"}
    return out


def build_scene(*, slug: str = "study", with_models: bool = True, model_keys: str = "shared") -> Scene:
    dataset = DatasetFactory(slug=slug, reviews_per_item=3, overlap_fraction=1.0, audit_fraction=1.0)
    users = {name: UserFactory(username=name, roles=["reviewer"]) for name in REVIEWERS}
    images = [ImageFactory(dataset=dataset, width=W, height=H, audit_draw=audit_draw_for(i)) for i in range(10)]
    scene = Scene(dataset, images, users)
    for i, image in enumerate(images):
        key = str(uuid.UUID(int=i + 1))
        scene.keys.append(key)
        if with_models:
            for model, labels in MODELS.items():
                answer = payload(labels[i], key, confidence=0.95) if model_keys == "shared" else annotator_payload(labels[i], i, model)
                # No temperature was stored when these were made: the raw distribution is the saved one.
                make_annotation(image, kind=AnnotationKind.MODEL, author_name=model, payload=answer,
                                raw_distribution=answer["ces"]["distribution"])
            if model_keys == "own":
                make_annotation(image, kind=AnnotationKind.MODEL, author_name=PIPELINE_AUTHOR,
                                payload=payload(MODELS["gpt-4o"][i], key, confidence=0.9))
        for name in REVIEWERS:
            label = LABELS[name][i]
            if label is None:
                continue
            kwargs = {}
            if i == 0:
                box, status, phrase = IMAGE0_SUBJECT[name]
                kwargs = {"subject_box": box, "subject_status": status, "subject_phrase": phrase}
            if i == 1 and name == "carol":
                kwargs["attribute_status"] = "rejected"
            make_annotation(image, kind=AnnotationKind.HUMAN, author_name=name, author_user=users[name],
                            payload=payload(label, key, confidence=CONFIDENCE[name][i], **kwargs),
                            decision=Decision.APPROVED)
        labels = [LABELS[name][i] for name in REVIEWERS]
        if len({v for v in labels if v}) > 1:
            make_annotation(image, kind=AnnotationKind.ADJUDICATION, author_name="adjudicator1",
                            payload=payload(majority(labels), key), decision=Decision.APPROVED)
    return scene
