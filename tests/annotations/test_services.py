"""annotation_create: versions, current flags, conflicts, and database constraints."""

import pytest
from django.db import IntegrityError, transaction

from annotations.domain import PIPELINE_AUTHOR
from annotations.errors import InvalidAnnotation, VersionConflict
from annotations.models import Annotation, AnnotationKind, Element
from annotations.selectors import annotation_to_dict, final_annotation_ids, image_final_annotation
from annotations.validation import validate_annotation
from core.vocabulary import EKMAN
from tests.factories import (
    ImageFactory,
    UserFactory,
    annotation_payload,
    make_annotation,
)

pytestmark = pytest.mark.django_db


def test_every_edit_is_a_new_version_and_nothing_is_overwritten():
    image = ImageFactory()
    first = make_annotation(image, author_name="gpt-4o")
    second = make_annotation(image, author_name="gpt-4o", parent=first, payload_kwargs={"label": "awe"})
    first.refresh_from_db()
    assert (first.version, second.version) == (1, 2)
    assert first.is_current is False and second.is_current is True
    assert first.ces_label == "fear" and second.ces_label == "awe"
    assert Annotation.objects.filter(image=image).count() == 2
    # The old version keeps its own triplets and elements.
    assert Element.objects.filter(triplet__annotation=first).count() == 3


def test_one_current_version_per_author_is_enforced_by_the_database():
    image = ImageFactory()
    a = make_annotation(image, author_name="gpt-4o")
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(image=image, version=a.version + 1, kind=AnnotationKind.MODEL,
                                  author_name="gpt-4o", is_current=True)


def test_two_authors_each_have_a_current_version():
    image = ImageFactory()
    make_annotation(image, author_name="gpt-4o")
    make_annotation(image, author_name="gemini-2.5")
    assert Annotation.objects.filter(image=image, is_current=True).count() == 2


def test_expected_version_mismatch_raises_conflict_with_what_changed():
    image = ImageFactory()
    make_annotation(image)
    user = UserFactory()
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name=user.username, author_user=user)
    with pytest.raises(VersionConflict) as info:
        make_annotation(image, kind=AnnotationKind.HUMAN, author_name="other", expected_version=1)
    assert info.value.changes["current_version"] == 2
    assert info.value.changes["newer_versions"][0]["author_name"] == user.username
    assert Annotation.objects.filter(image=image).count() == 2


@pytest.mark.parametrize("box", [[10, 10, 5, 20], [10, 10, 20, 10]])
def test_inverted_boxes_are_refused_by_the_database(box):
    image = ImageFactory()
    a = make_annotation(image)
    element = Element.objects.filter(triplet__annotation=a, role="background").get()
    element.x0, element.y0, element.x1, element.y1 = box
    with pytest.raises(IntegrityError), transaction.atomic():
        element.save()


def test_a_label_outside_the_datasets_taxonomy_is_refused():
    """Labels are per dataset now (docs/taxonomies.md): the database no longer holds one fixed
    list, so validation refuses a word that is not one of the dataset's labels."""
    image = ImageFactory()
    payload = annotation_payload(image.width, image.height)
    payload["ces"] = {"label": "joy"}
    with pytest.raises(InvalidAnnotation, match="unknown emotion 'joy'; expected one of amusement, awe"):
        validate_annotation(payload, image.width, image.height, image.dataset.get_taxonomy())
    payload["ces"] = {"label": "happiness"}
    with pytest.raises(InvalidAnnotation, match="unknown emotion 'happiness'"):
        validate_annotation(payload, image.width, image.height, image.dataset.get_taxonomy())
    assert validate_annotation(payload, image.width, image.height, EKMAN).ces.label == "happiness"


def test_round_trip_to_jsonl_dict_keeps_values():
    image = ImageFactory()
    payload = annotation_payload(image.width, image.height)
    a = make_annotation(image, payload=payload)
    out = annotation_to_dict(a)
    assert out["ces"] == payload["ces"] | {"distribution": out["ces"]["distribution"]}
    assert out["ces"]["distribution"] == pytest.approx(payload["ces"]["distribution"])
    t = out["triplets"][0]
    assert t["subject"]["mask"] == payload["triplets"][0]["subject"]["mask"]
    assert t["subject"]["box"] == payload["triplets"][0]["subject"]["box"]
    assert t["attribute"] == {"phrase": "dark, churning"}
    again = validate_annotation(out, image.width, image.height)
    assert again.triplets[0].elements[2].mask == payload["triplets"][0]["subject"]["mask"]


def test_final_annotation_is_adjudicated_then_approved_never_model_only():
    image = ImageFactory()
    make_annotation(image)
    assert image_final_annotation(image=image) is None
    human = make_annotation(image, kind=AnnotationKind.HUMAN, author_name="r1", decision="approved")
    assert image_final_annotation(image=image).pk == human.pk
    adj = make_annotation(image, kind=AnnotationKind.ADJUDICATION, author_name="a1")
    assert image_final_annotation(image=image).pk == adj.pk


def test_unknown_kind_is_a_clear_error():
    image = ImageFactory()
    with pytest.raises(InvalidAnnotation, match="kind"):
        make_annotation(image, kind="robot")


def test_an_auto_accepted_pipeline_answer_is_final_only_on_request_and_until_a_person_reviews_the_image():
    image = ImageFactory()
    make_annotation(image, author_name="gpt-4o", decision="approved")  # an annotator's own answer: never final
    assert final_annotation_ids([image.pk], include_auto_accepted=True) == {}
    auto = make_annotation(image, author_name=PIPELINE_AUTHOR, decision="approved")
    assert image_final_annotation(image=image) is None  # machine-accepted is not human-final
    assert final_annotation_ids([image.pk]) == {}
    assert final_annotation_ids([image.pk], include_auto_accepted=True) == {image.pk: auto.pk}
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="r1", decision="rejected")
    assert final_annotation_ids([image.pk], include_auto_accepted=True) == {}  # a reviewer's rejection overrules it
    human = make_annotation(image, kind=AnnotationKind.HUMAN, author_name="r2", decision="approved")
    assert image_final_annotation(image=image).pk == human.pk
    assert final_annotation_ids([image.pk], include_auto_accepted=True) == {image.pk: human.pk}
