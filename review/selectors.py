"""Reads for the review queue, adjudication, progress, the disagreement log and the
read-only image page.

What a reviewer is shown (``lease_payload``) holds model answers only: never
another person's review, so independent reviews stay independent. The rule for
every other read is ``review.visibility.images_user_may_review`` (its module says
who may see whose answers).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from rest_framework import serializers
from rest_framework.utils.encoders import JSONEncoder

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, Dataset, Image, ImageStatus
from annotations.selectors import (
    annotation_to_dict,
    annotations_with_elements,
    final_annotation_ids,
    image_current_annotations,
    image_review_base,
    image_review_sources,
    review_base_of,
)
from annotations.phrase_embeddings import phrase_vectors
from core.alignment import align_triplets, alignment_summary, same_meaning, triplet_phrases
from core.vocabulary import ROLES
from review.disagreements import reviews_conflict
from review.models import Disagreement, Draft, Lease, LeaseState, ReviewSubmission
from review.queue import NextRow, draft_sendable, draft_with_notice, queue_candidates
from review.refine import refine_available
from review.visibility import (
    DONE_STATUSES,
    PERSON_KINDS,
    images_user_may_review,
    sees_all_reviews,
    visible_versions,
)



def image_to_dict(image: Image) -> dict[str, Any]:
    return _image_dict(image.pk, image.width, image.height, image.source, image.status, image.original_name)


_URL_MARK = "9081726354"


@functools.lru_cache(maxsize=32)
def _id_url_parts(name: str, script_prefix: str, urlconf: str | None) -> tuple[str, str] | None:
    """``reverse(name, args=[id])`` split around the id (the ``id`` converter writes it as it is),
    once per script prefix and URLconf; None when the split is ambiguous."""
    url = reverse(name, args=[int(_URL_MARK)], urlconf=urlconf)
    if url.count(_URL_MARK) != 1:
        return None
    before, _, after = url.partition(_URL_MARK)
    return before, after


def _id_url(name: str, pk: int) -> str:
    """``reverse(name, args=[pk])`` for the image URLs of every review answer, without resolving them each time."""
    parts = _id_url_parts(name, get_script_prefix(), get_urlconf())
    if parts is None:
        return reverse(name, args=[pk])
    return f"{parts[0]}{pk}{parts[1]}"


def _image_dict(pk: int, width: int, height: int, source: str, status: str, original_name: str) -> dict[str, Any]:
    return {
        "id": pk, "url": _id_url("image-file", pk), "thumbnail_url": _id_url("image-thumbnail", pk),
        "width": width, "height": height, "source": source, "status": status, "original_name": original_name,
    }


def annotation_payload(annotation: Annotation) -> dict[str, Any]:
    """An annotation as the review API shows it (content in the EmoVerse JSONL form)."""
    content = annotation_to_dict(annotation, include_des=False)
    return {
        "id": annotation.pk, "version": annotation.version, "kind": annotation.kind,
        "author_name": annotation.author_name, "pipeline_version": annotation.pipeline_version,
        "decision": annotation.decision,
        "decision_reason": annotation.decision_reason, "triplets": content["triplets"],
        "ces": content.get("ces"), "rationale": content["rationale"], "created_at": annotation.created_at,
    }


def image_latest_version(image: Image) -> int:
    return image.annotations.aggregate(v=Max("version"))["v"] or 0


def annotators_disagreement(annotators: list[Annotation]) -> dict[str, Any]:
    """Where the model annotators disagree: their labels, and their phrases per triplet and role.

    Each annotator lists its triplets in its own order and words, so rows are paired by
    meaning (:mod:`core.alignment`: optimal assignment over role, phrase embeddings and
    IoU): every other annotator's triplets are aligned with the first one's, and a triplet
    with no counterpart gets a row of its own. ``index`` is the row's triplet number,
    ``paired_by`` how its triplets were paired (``meaning``, ``words`` where a phrase has no
    stored embedding yet, empty for a row of one). A role agrees when every annotator has a
    phrase for it and they mean the same (:func:`core.alignment.same_meaning`).
    ``alignment`` says how the rows were paired, for the page to show.
    """
    return _disagreement([(a.author_name, a.ces_label, annotation_to_dict(a, include_des=False)["triplets"])
                          for a in annotators])


def _disagreement(answers: list[tuple[str, str | None, list[dict]]]) -> dict[str, Any]:
    """:func:`annotators_disagreement` over ``(author name, CES label, triplets as in the API)``."""
    labels = {author: label for author, label, _ in answers}
    authors = [author for author, _, _ in answers]
    lists = {author: triplets for author, _, triplets in answers}
    vectors = phrase_vectors(triplet_phrases(*lists.values()))
    rows: list[dict[str, dict]] = [{authors[0]: t} for t in lists[authors[0]]] if authors else []
    paired_by: dict[int, str] = {}
    words_only: set[str] = set()
    for author in authors[1:]:
        anchors = [row[authors[0]] for row in rows if authors[0] in row]
        alignment = align_triplets(anchors, lists[author], vectors)
        words_only |= alignment.words_only
        by_anchor = {id(p.a): p for p in alignment.pairs if p.matched}
        for i, row in enumerate(rows):
            pair = by_anchor.get(id(row.get(authors[0])))
            if pair is not None:
                row[author] = pair.b
                paired_by[i] = max(paired_by.get(i, pair.paired_by), pair.paired_by, key=("key", "meaning", "words").index)
        rows += [{author: p.b} for p in alignment.pairs if p.a is None]
    triplets = []
    for index, row in enumerate(rows):
        for role in ROLES:
            values = {author: ((row.get(author) or {}).get(role) or {}).get("phrase") for author in authors}
            if any(values.values()):
                first = values[authors[0]]
                agree = all(v and same_meaning(first, v, vectors) for v in values.values())
                triplets.append({"index": index, "role": role, "values": values, "agree": agree,
                                 "paired_by": paired_by.get(index, "")})
    return {
        "label": {"values": labels, "agree": len(set(labels.values())) <= 1},
        "triplets": triplets,
        "agree": len(set(labels.values())) <= 1 and all(t["agree"] for t in triplets),
        "alignment": alignment_summary(words_only),
    }


def model_annotations(image: Image) -> list[Annotation]:
    """Current model annotations other than the pipeline's merged one (the VLM annotators)."""
    qs = image.annotations.filter(is_current=True, kind=AnnotationKind.MODEL).exclude(author_name=PIPELINE_AUTHOR)
    return list(annotations_with_elements(qs.order_by("author_name")))


def annotators_by_run(image: Image, base: Annotation | None,
                      models: list[Annotation] | None = None) -> tuple[list[Annotation], list[Annotation]]:
    """The model annotators of the latest pipeline run, and those of earlier runs (or imports).

    Each annotator's answer is a current MODEL annotation (author = the model's name) carrying
    the ``pipeline_version`` of the run or import that made it; one run's annotators share it,
    and a later run with other annotators leaves the earlier answers current. The latest run
    is the base's (the merged answer the reviewer starts from) when its annotators are there,
    else the one with the newest annotator answer. ``models``: :func:`model_annotations`, when
    the caller has read them already.
    """
    models = model_annotations(image) if models is None else models
    annotators = [a for a in models if base is None or a.pk != base.pk]
    if not annotators:
        return [], []
    runs = {a.pipeline_version for a in annotators}
    if base is not None and base.kind == AnnotationKind.MODEL and base.pipeline_version in runs:
        latest = base.pipeline_version
    else:
        latest = max(annotators, key=lambda a: a.version).pipeline_version
    return [a for a in annotators if a.pipeline_version == latest], [a for a in annotators if a.pipeline_version != latest]


def lease_payload(lease: Lease) -> dict[str, Any]:
    """Everything the review page needs for one leased image (see docs/review-api.md), in three
    queries: the model answers with their elements (:func:`image_review_sources`) and the draft."""
    image = lease.image
    sources = image_review_sources(image_id=image.pk)
    base = sources.base
    annotators, earlier = annotators_by_run(image, base, sources.models)
    draft, draft_notice = draft_with_notice(image_id=image.pk, reviewer_id=lease.reviewer_id)
    return {
        "lease": {"id": lease.pk, "expires_at": lease.expires_at, "dataset": lease.dataset.slug, "version": lease.version},
        "image": image_to_dict(image),
        "version": sources.latest_version,
        "require_all_checked": lease.dataset.require_all_checked,
        "base": annotation_payload(base) if base else None,
        "annotators": [annotation_payload(a) for a in annotators],
        "earlier_annotators": [annotation_payload(a) for a in earlier],
        "disagreement": annotators_disagreement(annotators) if len(annotators) > 1 else None,
        "critic": base.critic if base else None,
        "draft": {"payload": draft.payload, "saved_at": draft.saved_at} if draft else None,
        "draft_notice": draft_notice,  # why a stored draft was not sent (over the size limit), else ""
        "refine_available": refine_available(),
    }


@dataclass(frozen=True)
class _Answer:
    """An answer as ``review_next`` returns it: what :func:`annotations.selectors.review_base_of`
    and :func:`annotators_by_run` read of an annotation, and its JSON (review API payload, critic)."""

    pk: int
    kind: str
    author_name: str
    version: int
    pipeline_version: str
    ces_label: str | None
    payload: str
    critic: str | None


_DATETIME = serializers.DateTimeField()
_ENCODER = JSONEncoder()
_LINE_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def lease_payload_json_available() -> bool:
    """Whether :func:`lease_payload_json` may answer: PostgreSQL (``review_next``), and datetimes
    shown in UTC (the database writes them so)."""
    return connection.vendor == "postgresql" and timezone.get_current_timezone_name() == "UTC"


def lease_payload_json(row: NextRow) -> bytes:
    """:func:`lease_payload` as the API's JSON, for a lease claimed with ``review_next``
    (``review.queue.lease_next_row``), which read everything it shows: the answers' JSON comes
    from the database as it is (``orjson.Fragment``), so no annotation is loaded as objects nor
    serialised again here. The same rules pick the base and the annotators (on the answers'
    metadata); the annotators' disagreement and the draft's checks run in Python as before.
    The JSON equals the serializer's (``review.apis.NextAPI.OutputSerializer``) once parsed
    (tests/review/test_next_json.py)."""
    metas = orjson.loads(row.answers) if row.answers else []
    answers = [_Answer(m["id"], m["kind"], m["author_name"], m["version"], m["pipeline_version"], m["ces_label"],
                       payload, critic)
               for m, payload, critic in zip(metas, row.answer_payloads or (), row.answer_critics or (), strict=True)]
    base = review_base_of(answers)
    models = [a for a in answers if a.kind == AnnotationKind.MODEL and a.author_name != PIPELINE_AUTHOR]
    annotators, earlier = annotators_by_run(None, base, models)
    disagreement = None
    if len(annotators) > 1:
        disagreement = _disagreement([(a.author_name, a.ces_label, json.loads(a.payload)["triplets"]) for a in annotators])
    draft = None
    if row.draft_id is not None:
        draft = Draft(pk=row.draft_id, image_id=row.image_id, reviewer_id=row.reviewer_id, payload=json.loads(row.draft_payload),
                      saved_at=row.draft_saved_at)
    draft, draft_notice = draft_sendable(draft)
    body = orjson.dumps({
        "lease": {"id": row.lease_id, "expires_at": _DATETIME.to_representation(row.lease_expires_at),
                  "dataset": row.dataset_slug, "version": row.lease_version},
        "image": _image_dict(row.image_id, row.image_width, row.image_height, row.image_source, row.image_status,
                             row.image_original_name),
        "version": row.latest_version,
        "require_all_checked": row.require_all_checked,
        "base": _fragment(base.payload) if base else None,
        "annotators": [_fragment(a.payload) for a in annotators],
        "earlier_annotators": [_fragment(a.payload) for a in earlier],
        "disagreement": disagreement,
        "critic": _fragment(base.critic) if base and base.critic is not None else None,
        # the payload as stored; saved_at as DRF's JSON encoder writes a datetime in a JSON field (milliseconds)
        "draft": {"payload": _fragment(row.draft_payload), "saved_at": _ENCODER.default(draft.saved_at)} if draft else None,
        "draft_notice": draft_notice,
        "refine_available": refine_available(),
    })
    for char, escaped in _LINE_SEPARATORS:  # as DRF's JSONRenderer writes them
        if char in body:
            body = body.replace(char, escaped)
    return body


def _fragment(text: str) -> orjson.Fragment:
    return orjson.Fragment(text.encode())


def dataset_progress(*, dataset: Dataset, now: datetime | None = None, reviewer: AbstractBaseUser | None = None) -> dict[str, Any]:
    """Done (approved, rejected, flagged), in review (leased now), adjudication, left, per reviewer;
    with ``reviewer``, also ``you``: the reviews they submitted and the items they may still be given."""
    now = now or timezone.now()
    counts = dict(Image.objects.filter(dataset=dataset).order_by().values_list("status").annotate(n=Count("id")))
    leased = (Lease.objects.filter(dataset=dataset, state=LeaseState.ACTIVE, expires_at__gt=now)
              .values("image").distinct().count())
    per_reviewer = (ReviewSubmission.objects.filter(dataset=dataset).order_by().values("reviewer__username")
                    .annotate(done=Count("id")).order_by("-done", "reviewer__username"))
    in_queue = counts.get(ImageStatus.IN_REVIEW, 0)
    out = {
        "dataset": dataset.slug,
        "total": sum(counts.values()),
        "done": sum(counts.get(s, 0) for s in DONE_STATUSES),
        "in_review": leased,
        "adjudication": counts.get(ImageStatus.ADJUDICATION, 0),
        "left": max(in_queue - leased, 0),
        "per_reviewer": [{"username": r["reviewer__username"], "done": r["done"]} for r in per_reviewer],
    }
    if reviewer is not None:
        out["you"] = reviewer_progress(dataset=dataset, reviewer=reviewer, now=now)
    return out


def reviewer_progress(*, dataset: Dataset, reviewer: AbstractBaseUser, now: datetime) -> dict[str, int]:
    """The reviews ``reviewer`` submitted in ``dataset`` and the items left for them: those the
    queue may still give them (skipped ones included), less the one they hold now. Unlike the
    dataset's counts, both move with every submit, even on items that wait for more reviews."""
    held = Lease.objects.filter(reviewer=reviewer, state=LeaseState.ACTIVE, expires_at__gt=now).values("image")
    left = queue_candidates(dataset=dataset, reviewer=reviewer, now=now, include_skipped=True).exclude(pk__in=held)
    return {"reviewed": ReviewSubmission.objects.filter(dataset=dataset, reviewer=reviewer).count(), "left": left.count()}


def adjudication_queue(*, user: AbstractBaseUser, dataset: Dataset | None = None) -> QuerySet[Image]:
    """Images waiting for adjudication that ``user`` did not review, lowest priority first."""
    reviewed = ReviewSubmission.objects.filter(image=OuterRef("pk"), reviewer=user)
    qs = Image.objects.filter(status=ImageStatus.ADJUDICATION).exclude(Exists(reviewed)).select_related("dataset")
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return qs.order_by("priority", "created_at", "id")


def adjudication_conflicts(images: list[Image]) -> dict[int, dict[str, Any]]:
    """``image id → why its independent reviews conflict`` (``review.disagreements.reviews_conflict``:
    labels, elements kept by one reviewer only, geometry IoU below ``EMOVERSE_ADJUDICATION_MIN_IOU``)."""
    reviews: dict[int, list[dict]] = {image.pk: [] for image in images}
    qs = Annotation.objects.filter(review_submission__image__in=list(reviews)).order_by("version")
    for annotation in annotations_with_elements(qs):
        reviews[annotation.image_id].append(annotation_to_dict(annotation, include_des=False))
    min_iou = settings.EMOVERSE_ADJUDICATION_MIN_IOU
    return {pk: reviews_conflict(found, min_iou=min_iou) for pk, found in reviews.items()}


def adjudication_payload(image: Image) -> dict[str, Any]:
    """All independent reviews of the image side by side, with the model answers they started from.

    Shows every review: callers check :func:`adjudication_check` first.
    """
    reviews = list(annotations_with_elements(
        Annotation.objects.filter(review_submission__image=image).select_related("review_submission").order_by("version")
    ))
    base = image_review_base(image=image)
    annotators, earlier = annotators_by_run(image, base)
    return {
        "image": image_to_dict(image),
        "dataset": image.dataset.slug,
        "version": image_latest_version(image),
        "base": annotation_payload(base) if base else None,
        "annotators": [annotation_payload(a) for a in annotators],
        "earlier_annotators": [annotation_payload(a) for a in earlier],
        "critic": base.critic if base else None,
        "disagreement": annotators_disagreement(annotators) if len(annotators) > 1 else None,
        "conflict": adjudication_conflicts([image])[image.pk],
        "reviews": [{**annotation_payload(a), "reviewer": a.author_name,
                     "time_spent_ms": a.review_submission.time_spent_ms} for a in reviews],
    }


def disagreement_list(*, user: AbstractBaseUser, dataset: str = "", model: str = "", field: str = "", reviewer: str = "",
                      kind: str = "", since: datetime | None = None, until: datetime | None = None) -> QuerySet[Disagreement]:
    """Disagreement rows, newest first, filtered by dataset slug, model name, field, reviewer username, kind, time.

    Rows of other people's answers on images ``user`` holds or may still be given
    a review slot on (:func:`images_user_may_review`) are left out.
    """
    qs = Disagreement.objects.select_related("dataset", "reviewer", "annotation").order_by("-id")
    filters = ~(Q(image__in=images_user_may_review(user=user)) & ~Q(reviewer=user))
    if dataset:
        filters &= Q(dataset__slug=dataset)
    if model:
        filters &= Q(model_name=model)
    if field:
        filters &= Q(field=field)
    if reviewer:
        filters &= Q(reviewer__username=reviewer)
    if kind:
        filters &= Q(kind=kind)
    if since:
        filters &= Q(created_at__gte=since)
    if until:
        filters &= Q(created_at__lt=until)
    return qs.filter(filters)


def disagreement_model_names(*, dataset: str = "") -> list[str]:
    qs = Disagreement.objects.all()
    if dataset:
        qs = qs.filter(dataset__slug=dataset)
    return list(qs.order_by("model_name").values_list("model_name", flat=True).distinct())


def image_answer(*, image: Image) -> Annotation | None:
    """The version that stands as the image's answer now: its final annotation (an auto-accepted
    pipeline answer included), else the answer under review (:func:`image_review_base`)."""
    final = final_annotation_ids([image.pk], include_auto_accepted=True).get(image.pk)
    return Annotation.objects.get(pk=final) if final is not None else image_review_base(image=image)


def version_rows(*, image: Image, user: AbstractBaseUser) -> list[tuple[Annotation, str]]:
    """The versions the user may see, newest first, each with its state: "current" (the
    image's answer), "superseded" (replaced by a newer version of its author, or older than
    the answer) or "" (newer than the answer, not standing yet: a review waiting for more)."""
    answer = image_answer(image=image)
    rows = []
    for v in visible_versions(image=image, user=user):
        if answer is not None and v.pk == answer.pk:
            state = "current"
        elif not v.is_current or (answer is not None and v.version < answer.version):
            state = "superseded"
        else:
            state = ""
        rows.append((v, state))
    return rows


def image_page_annotations(*, image: Image, user: AbstractBaseUser, version: int | None = None) -> list[dict[str, Any]]:
    """The current annotation of every author the user may see, as review API payloads
    plus ``is_current``; with ``version``, that version too (first) when it is visible."""
    everything = sees_all_reviews(image=image, user=user)
    current = [a for a in image_current_annotations(image=image)
               if everything or a.kind not in PERSON_KINDS or a.author_user_id == user.pk]
    current.sort(key=_shown_first)
    out = []
    emotions = image.dataset.get_taxonomy().labels
    if version is not None and not any(a.version == version for a in current):
        found = annotations_with_elements(visible_versions(image=image, user=user).filter(version=version))[:1]
        out += [_for_page(a, is_current=a.is_current, emotions=emotions) for a in found]
    out += [_for_page(a, is_current=True, emotions=emotions) for a in current]
    return out


def _shown_first(annotation: Annotation) -> tuple[int, int]:
    """People's answers first (adjudication, then reviews), then the pipeline's, then the annotators'; newest first."""
    rank = {AnnotationKind.ADJUDICATION: 0, AnnotationKind.HUMAN: 1, AnnotationKind.IMPORT: 2}.get(annotation.kind, 4)
    if annotation.kind == AnnotationKind.MODEL and annotation.author_name == PIPELINE_AUTHOR:
        rank = 3
    return rank, -annotation.version


def _for_page(annotation: Annotation, *, is_current: bool, emotions: Sequence[str]) -> dict[str, Any]:
    """The API payload plus what the template needs: elements as (role, element) rows and the
    distribution as (emotion, probability) rows in the order of the dataset's taxonomy (``emotions``)."""
    payload = annotation_payload(annotation)
    payload["is_current"] = is_current
    payload["rows"] = [[(role, t[role]) for role in ROLES if role in t] for t in payload["triplets"]]
    distribution = (payload["ces"] or {}).get("distribution") or {}
    payload["distribution"] = [(e, distribution.get(e, 0.0)) for e in emotions] if distribution else []
    return payload
