"""A review's submit on PostgreSQL: read once, compute in Python, write in one statement.

``review.services.review_submit`` checks ownership and state on the lease it read and
validates the answer; then, on PostgreSQL, :func:`submit_one_statement`:

1. reads the image's current model and import answers with their triplets and elements in
   one query (and, for what may be the last review of an overlapping item, the other
   submitted reviews in the same query), or takes those :func:`lease_read` read with the lease;
2. reads the stored phrase embeddings of every phrase involved: :func:`lease_read` reads those of
   the phrases it was handed (the person's answer's and those their element decisions replaced)
   with the lease; any other (a model phrase the person changed without saying so) in one query;
3. computes the disagreement rows (``review.disagreements.annotation_differences``, as
   ``review.services.disagreements_record`` does) and, for the last review of an
   overlapping item, whether the reviews disagree (``reviews_disagree``);
4. calls ``review_submit(...)`` (migration ``review.0007``) with all of it as one jsonb
   document: under the image and lease row locks it checks the lease, the image status, the
   versions, and that the answers (and reviews) it was given are still the current ones, then
   writes everything. It runs in autocommit: one statement, atomic by itself.

When the function finds anything other than the plain case (a lease that lapsed, was
submitted, lost or taken; an image that left review; a version conflict; answers that changed
since step 1; no review plan) it raises SQLSTATE ``RS409`` having written nothing, and this
module returns ``None``: the caller then runs the Python path, which raises the same error as
ever, or takes a lapsed lease up again and submits. Nothing here decides an error itself.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection, models, transaction
from django.db.models import Field, Model
from django.utils import timezone

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, Dataset, Image, PhraseEmbedding
from annotations.phrase_embeddings import phrase_model_name
from annotations.prepared import array_literal, prepared_cursor
from annotations.signals import phrases_added
from annotations.tokens import ReadWithToken
from annotations.validation import MAX_PHRASE_LENGTH, AnnotationInput, ElementInput
from core.alignment import PhraseVectors, phrase_hash, phrase_key, triplet_phrases
from core.vocabulary import ROLES, Taxonomy, TaxonomyError, taxonomy_from_spec
from review.disagreements import annotation_differences, reviews_disagree
from review.models import Lease, ReviewPlan

FALLBACK_SQLSTATE = "RS409"  # review_submit found a case for the Python path; nothing was written

# The image's current model and import answers ('a') and, with the flag, the annotations of its
# submitted reviews ('r', with their decision), each with triplets and elements: one row per
# element (migration review.0007; a function so that the join's plan is kept per connection).
SOURCES_SQL = "SELECT * FROM review_submit_sources(%s, %s) ORDER BY 1, 6, 3, 12, 14"
# The lease, its image, dataset and plan (the first row, as jsonb), SOURCES_SQL's rows for the lease's
# image and the stored embeddings of the phrases whose hashes it is given ('v' rows), in one query
# (migrations review.0011, 0012, 0013).
READ_SQL = "SELECT * FROM review_submit_read(%s::bigint, %s::text, %s::text[])"
_SOURCES = "_submit_sources"  # where lease_read() keeps the answers it read on the lease
_VECTORS = "_submit_vectors"  # and the phrases it looked up, with the embeddings it found
MAX_READ_PHRASES = 64  # phrases looked up with the lease; an answer with more looks them up after validation


_LEASE_READ = (Lease, Image, Dataset, ReviewPlan)


def _last_of_several(plan: ReviewPlan | None) -> bool:
    """Whether this may be the last review of an overlapping item (the other reviews are compared)."""
    return plan is not None and plan.required_reviews > 1 and plan.submitted_reviews + 1 >= plan.required_reviews


@functools.lru_cache(maxsize=64)
def _taxonomy(spec_key: bytes) -> Taxonomy:
    return taxonomy_from_spec(orjson.loads(spec_key))


def submitted_phrases(annotation: Any, element_decisions: Any = ()) -> frozenset[str]:
    """The normalised phrases of a submitted answer as sent (not yet validated: anything but a
    string a phrase can be is passed over) and the phrases its element decisions name as before
    or after; empty past :data:`MAX_READ_PHRASES` (normalising no more than that many)."""
    texts = []
    triplets = annotation.get("triplets") if isinstance(annotation, dict) else None
    for t in triplets if isinstance(triplets, list) else ():
        for role in ROLES:
            element = t.get(role) if isinstance(t, dict) else None
            texts.append(element.get("phrase") if isinstance(element, dict) else None)
    for d in element_decisions if isinstance(element_decisions, list) else ():
        if isinstance(d, dict):
            texts += [d.get("before"), d.get("after")]
    keys: set[str] = set()
    for text in texts:
        if isinstance(text, str) and len(text) <= MAX_PHRASE_LENGTH and (key := phrase_key(text)):
            keys.add(key)
            if len(keys) > MAX_READ_PHRASES:
                return frozenset()
    return frozenset(keys)


def phrase_hashes(phrases: frozenset[str]) -> dict[str, str]:
    """The stored-embedding key of each normalised phrase (``phrase_hash``: hash -> phrase)."""
    hashes = {}
    for key in phrases:
        try:
            hashes[phrase_hash(key)] = key
        except UnicodeEncodeError:  # a lone surrogate: the answer is refused later
            continue
    return hashes


def lease_read(pk: int, phrases: frozenset[str] = frozenset(), read: ReadWithToken | None = None) -> Lease:
    """The lease with its image, the image's dataset and review plan (``image.review_plan``,
    set only when there is one), the image's answers and the stored embeddings of ``phrases``
    (normalised), in one query: ``review_submit_read`` (migrations ``review.0011`` to ``0013``)
    gives a first row with the four rows as jsonb, each field read back as its model field's
    ``to_python`` would, then the rows of :data:`SOURCES_SQL` and the embeddings found (the last
    two kept on the lease for :func:`submit_one_statement`). Raises ``Lease.DoesNotExist``.

    ``read``: that query as ``review.submit_token_read`` had the token authentication send it;
    its rows are taken when it was sent for this lease and these phrases, else the query is sent."""
    hashes = phrase_hashes(phrases)
    params = [pk, phrase_model_name(), array_literal(sorted(hashes))]
    if read is not None and read.rows is not None and read.params == params:
        rows = read.rows
    else:
        with prepared_cursor() or connection.cursor() as cursor:
            cursor.execute(READ_SQL, params)
            rows = cursor.fetchall()
    if not rows:
        raise Lease.DoesNotExist(f"no lease {pk}")
    found = rows[0][0]
    objects = []
    for model, row in zip(_LEASE_READ, orjson.loads(found)):
        attnames, readers = _row_reader(model)
        objects.append(None if row is None else model.from_db(
            connection.alias, attnames, [None if (v := row[column]) is None else read(v) for column, read in readers]))
    lease, image, dataset, plan = objects
    # Dataset.get_taxonomy() checks the specification once per instance; here once per process
    # and specification (a bad one is left to get_taxonomy(), which raises where it always did).
    try:
        dataset.__dict__["_taxonomy"] = (dataset.taxonomy, _taxonomy(orjson.dumps(dataset.taxonomy, option=orjson.OPT_SORT_KEYS)))
    except (TaxonomyError, orjson.JSONDecodeError, TypeError):
        pass
    image.dataset = dataset
    if plan is not None:
        image.review_plan = plan
    lease.image = image
    lease.__dict__[_SOURCES] = (_last_of_several(plan), _sources([row[1:27] for row in rows if row[1] in ("a", "r")]))
    lease.__dict__[_VECTORS] = (frozenset(hashes.values()),
                                {hashes[row[26]]: _vector(row[27]) for row in rows if row[1] == "v" and row[26] in hashes})
    return lease


def _as_is(value: Any) -> Any:
    return value


def _read_as(python_type: type, field: Field) -> Callable[[Any], Any]:
    """``field.to_python``, skipped for a value that already has the field's Python type."""
    to_python = field.to_python

    def read(value: Any) -> Any:
        return value if type(value) is python_type else to_python(value)
    return read


def _read_float(field: Field) -> Callable[[Any], Any]:
    to_python = field.to_python

    def read(value: Any) -> Any:
        return float(value) if type(value) is float or type(value) is int else to_python(value)
    return read


def _read_datetime(field: Field) -> Callable[[Any], Any]:
    """jsonb writes a timestamptz in ISO 8601, which ``datetime.fromisoformat`` reads, as Django's
    ``parse_datetime`` does first."""
    to_python = field.to_python

    def read(value: Any) -> Any:
        if type(value) is str:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        return to_python(value)
    return read


@functools.cache
def _row_reader(model: type[Model]) -> tuple[list[str], list[tuple[str, Callable[[Any], Any]]]]:
    """The attnames of ``model``'s concrete fields and, per field, its column and how a jsonb value
    of it (``to_jsonb(row)``) is read back: as its field's ``to_python`` does, without the call
    where the value already has the type it would give."""
    readers = []
    for f in model._meta.concrete_fields:
        target = f.target_field if f.is_relation else f
        if isinstance(target, models.JSONField):
            read = _as_is  # JSONField.to_python gives the value as it is
        elif isinstance(target, models.BooleanField):
            read = _read_as(bool, f)
        elif isinstance(target, models.IntegerField):
            read = _read_as(int, f)
        elif isinstance(target, models.FloatField):
            read = _read_float(f)
        elif isinstance(target, (models.CharField, models.TextField)):
            read = _read_as(str, f)
        elif isinstance(target, models.DateTimeField):
            read = _read_datetime(f)
        else:
            read = f.to_python
        readers.append((f.column, read))
    return [f.attname for f in model._meta.concrete_fields], readers


@dataclass
class Source:
    """One stored annotation as ``annotations.selectors.annotation_to_dict(include_des=False)`` gives it."""

    id: int
    version: int
    kind: str
    author_name: str
    answer: dict[str, Any]
    decision: str | None = None  # a submitted review's decision
    part: str = "a"  # "a": a model or import answer, "r": a submitted review


def _element(row: tuple) -> dict[str, Any]:
    """``annotations.selectors.element_to_dict`` of one row of :data:`SOURCES_SQL`."""
    phrase, status, x0, y0, x1, y1, box_score, counts, height, width, mask_score = row[14:25]
    out: dict[str, Any] = {"phrase": phrase}
    if x0 is not None:
        out["box"] = [x0, y0, x1, y1]
    if box_score is not None:
        out["box_score"] = box_score
    if counts is not None:
        out["mask"] = {"size": [height, width], "counts": counts}
    if mask_score is not None:
        out["mask_score"] = mask_score
    if status != "pending":
        out["status"] = status
    return out


def _answer(row: tuple) -> dict[str, Any]:
    label, confidence, distribution, rationale, prompt_version = row[6:11]
    out: dict[str, Any] = {"triplets": []}
    if label:
        out["ces"] = {"label": label, "confidence": confidence,
                      "distribution": None if distribution is None else orjson.loads(distribution)}
    out["rationale"] = rationale
    out["annotator"] = {"kind": row[4], "name": row[5]} | ({"prompt_version": prompt_version} if prompt_version else {})
    return out


def _read_sources(image_id: int, with_reviews: bool) -> tuple[list[Source], list[Source]]:
    """The current model and import answers (by author name) and, with ``with_reviews``, the
    submitted reviews (by version), in one query."""
    with connection.cursor() as cursor:
        cursor.execute(SOURCES_SQL, [image_id, with_reviews])
        return _sources(cursor.fetchall())


def _sources(rows: list[tuple]) -> tuple[list[Source], list[Source]]:
    """The answers and the reviews of :data:`SOURCES_SQL`'s rows."""
    sources: dict[int, Source] = {}
    for row in rows:
        source = sources.get(row[2])
        if source is None:
            source = sources[row[2]] = Source(row[2], row[3], row[4], row[5], _answer(row), row[1], row[0])
        if row[11] is None:
            continue  # an answer without triplets
        triplets = source.answer["triplets"]
        if not triplets or triplets[-1]["index"] != row[11]:
            triplets.append({"index": row[11], "key": str(row[12])})
        if row[13] is not None:
            triplets[-1][row[13]] = _element(row)
    for source in sources.values():  # elements in ROLES order, as triplets_to_list gives them
        source.answer["triplets"] = [{"key": t["key"], **{r: t[r] for r in ROLES if r in t}} for t in source.answer["triplets"]]
    answers = [s for s in sources.values() if s.part == "a"]
    reviews = sorted((s for s in sources.values() if s.part == "r"), key=lambda s: s.version)
    return answers, reviews


def _review_base(answers: list[Source]) -> Source | None:
    """``annotations.selectors.review_base_of`` over the sources."""
    for tier in ([a for a in answers if a.kind == AnnotationKind.MODEL and a.author_name == PIPELINE_AUTHOR],
                 [a for a in answers if a.kind in (AnnotationKind.IMPORT, AnnotationKind.MODEL)]):
        if tier:
            return max(tier, key=lambda a: a.version)
    return None


def _element_input(e: ElementInput) -> dict[str, Any]:
    """``element_to_dict`` of the element as it will be stored."""
    out: dict[str, Any] = {"phrase": e.phrase}
    if e.box is not None:
        out["box"] = [float(v) for v in e.box]
    if e.box_score is not None:
        out["box_score"] = e.box_score
    if e.mask is not None:
        out["mask"] = {"size": [e.mask["size"][0], e.mask["size"][1]], "counts": e.mask["counts"]}
    if e.mask_score is not None:
        out["mask_score"] = e.mask_score
    if e.status != "pending":
        out["status"] = e.status
    return out


def human_answer(data: AnnotationInput, keys: list[str], author_name: str) -> dict[str, Any]:
    """The person's answer as ``annotation_to_dict(include_des=False)`` will read it back once stored
    (triplet keys as the database writes them)."""
    triplets = []
    for t, key in zip(data.triplets, keys):
        by_role = {e.role: e for e in t.elements}
        triplets.append({"key": key, **{role: _element_input(by_role[role]) for role in ROLES if role in by_role}})
    out: dict[str, Any] = {"triplets": triplets}
    if data.ces is not None and data.ces.label:
        out["ces"] = {"label": data.ces.label, "confidence": data.ces.confidence, "distribution": data.ces.distribution}
    out["rationale"] = data.rationale
    out["annotator"] = {"kind": AnnotationKind.HUMAN, "name": author_name}
    return out


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):  # an integer past 64 bits in a client's before/after
        return json.dumps(value).encode()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def disagreement_rows(human: dict, answers: list[Source], vectors: PhraseVectors) -> list[dict[str, Any]]:
    """The rows ``review.services.disagreements_record`` writes, as jsonb records for ``review_submit``."""
    rows = []
    for model in answers:
        for d in annotation_differences(model.answer, human, vectors):
            rows.append({"model_name": model.author_name, "model_annotation_id": model.id, "field": d.field,
                         "triplet_key": d.triplet_key, "role": d.role, "model_value": d.model_value,
                         "model_confidence": _float(d.model_confidence), "human_value": d.human_value,
                         "box_iou": _float(d.box_iou), "mask_iou": _float(d.mask_iou), "paired_by": d.paired_by})
    return rows


@dataclass(frozen=True)
class Written:
    annotation: Annotation
    image_status: str
    disagreements: int


def submit_one_statement(*, lease: Lease, reviewer: AbstractBaseUser, image: Image, expected_version: int, decision: str,
                         reason: str, data: AnnotationInput, decisions: list, time_spent_ms: int) -> Written | None:
    """Submit through ``review_submit`` (module docstring); ``None`` when the Python path must
    answer instead (nothing was written then). ``image`` is the lease's image as read with
    its dataset and review plan; ``data`` carries the element statuses to store."""
    last_of_several = _last_of_several(getattr(image, "review_plan", None))
    read = lease.__dict__.pop(_SOURCES, None)  # read with the lease by lease_read()
    if read is not None and read[0] == last_of_several:
        answers, reviews = read[1]
    else:
        answers, reviews = _read_sources(image.pk, last_of_several)
    author_name = reviewer.get_username()
    keys = [str(uuid.UUID(t.key)) if t.key else str(uuid.uuid4()) for t in data.triplets]
    human = human_answer(data, keys, author_name)
    vectors = _phrase_vectors(triplet_phrases(human["triplets"], *(a.answer["triplets"] for a in answers),
                                              *(r.answer["triplets"] for r in reviews)),
                              lease.__dict__.pop(_VECTORS, None))
    rows = disagreement_rows(human, answers, vectors)
    disagree = False
    if last_of_several:
        disagree = reviews_disagree([r.answer for r in reviews] + [human], [r.decision for r in reviews] + [decision],
                                    min_iou=settings.EMOVERSE_ADJUDICATION_MIN_IOU, vectors=vectors)
    base = _review_base(answers)
    label = data.ces.label if data.ces else None
    doc = {
        "author_name": author_name, "parent_id": base.id if base else None, "decision": decision,
        "decision_reason": reason, "ces_label": label, "ces_confidence": data.ces.confidence if data.ces else None,
        "ces_distribution": data.ces.distribution if data.ces else None,
        "des": bytes(data.des).hex() if data.des is not None else None, "rationale": data.rationale,
        "extra": {"lease": lease.pk, "time_spent_ms": time_spent_ms}, "time_spent_ms": time_spent_ms, "label": label,
        "triplets": [{"index": i, "key": key} for i, key in enumerate(keys)],
        "elements": [_element_record(i, e) for i, t in enumerate(data.triplets) for e in t.elements],
        "decisions": [{"triplet_key": str(d.triplet_key), "role": d.role, "action": d.action, "before": d.before,
                       "after": d.after, "time_ms": d.time_ms} for d in decisions],
        "disagreements": rows,
    }
    args = [lease.pk, image.pk, reviewer.pk, timezone.now(), expected_version, array_literal(sorted(a.id for a in answers)),
            array_literal(sorted(r.id for r in reviews)) if last_of_several else None, disagree, _json(doc).decode()]
    try:
        if connection.in_atomic_block:  # a caller's transaction: a savepoint keeps it usable after RS409
            with transaction.atomic():
                found = _call(args)
        else:
            found = _call(args)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == FALLBACK_SQLSTATE:
            return None
        raise
    annotation_id, version, status = found
    annotation = _stored_annotation(image, reviewer, id=annotation_id, image_id=image.pk, version=version,
                                    kind=AnnotationKind.HUMAN, author_name=author_name, author_user_id=reviewer.pk,
                                    decision=decision, decision_reason=reason, rationale=data.rationale, ces_label=label,
                                    parent_id=base.id if base else None)
    image.status = status
    missing = frozenset(key for t in data.triplets for e in t.elements if (key := phrase_key(e.phrase)) and key not in vectors)
    if missing:
        # Phrases without a stored embedding: have a worker embed them (unless this process asked
        # for all of them a moment ago: ml.embed_requests).
        transaction.on_commit(lambda: phrases_added.send(sender=Annotation, annotation_ids=[annotation_id], phrases=missing))
    return Written(annotation=annotation, image_status=status, disagreements=len(rows))


def _vector(value: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(value), dtype="<f4")


@functools.cache
def _annotation_fields() -> list:
    return [(f.attname, f) for f in Annotation._meta.concrete_fields]


def _stored_annotation(image: Image, reviewer: AbstractBaseUser, **values: Any) -> Annotation:
    """The annotation ``review_submit`` wrote, as ``Annotation(**values)`` with its image and author
    would be once saved (other fields at their defaults), built from its columns in order as the
    ORM reads a row: Django's keyword-argument path costs a submit about 0.1 ms."""
    annotation = Annotation.from_db(connection.alias, None,
                                    [values[name] if name in values else f.get_default() for name, f in _annotation_fields()])
    Annotation.image.field.set_cached_value(annotation, image)
    Annotation.author_user.field.set_cached_value(annotation, reviewer)
    return annotation


def _phrase_vectors(phrases: set[str], read: tuple[frozenset[str], dict[str, np.ndarray]] | None = None) -> PhraseVectors:
    """``annotations.phrase_embeddings.phrase_vectors`` of normalised phrases. Those that
    :func:`lease_read` looked up (``read``: the phrases and the embeddings found) are taken from
    there; the others in one query of a fixed text (the ORM's costs more to build than the lookup
    to run)."""
    name = phrase_model_name()
    looked_up, found = read if read is not None else (frozenset(), {})
    found = {p: v for p, v in found.items() if p in phrases}
    wanted = {phrase_hash(p): p for p in phrases if p and p not in looked_up}
    if wanted:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT text_hash, vector FROM {connection.ops.quote_name(PhraseEmbedding._meta.db_table)} "
                           "WHERE model_name = %s AND text_hash = ANY(%s)", [name, list(wanted)])
            found |= {wanted[h]: _vector(v) for h, v in cursor.fetchall()}
    return PhraseVectors(found, model=name)


def _element_record(index: int, e: ElementInput) -> dict[str, Any]:
    box = e.box or (None, None, None, None)
    return {"t": index, "role": e.role, "phrase": e.phrase, "status": e.status, "x0": box[0], "y0": box[1], "x1": box[2],
            "y1": box[3], "box_score": e.box_score, "mask_counts": e.mask["counts"] if e.mask else None,
            "mask_height": e.mask["size"][0] if e.mask else None, "mask_width": e.mask["size"][1] if e.mask else None,
            "mask_score": e.mask_score}


def _call(args: list) -> tuple[int, int, str]:
    with prepared_cursor() or connection.cursor() as cursor:
        cursor.execute("SELECT * FROM review_submit(%s::bigint, %s::bigint, %s::bigint, %s::timestamptz, %s::integer, "
                       "%s::bigint[], %s::bigint[], %s::boolean, %s::jsonb)", args)
        return cursor.fetchone()
