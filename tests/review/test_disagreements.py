"""The disagreement log: pure comparison functions, and the rows a submit writes."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotations.domain import PIPELINE_AUTHOR
from annotations.phrase_embeddings import phrase_embeddings_store, phrase_model_name
from core.alignment import PhraseVectors, align_triplets, triplet_similarity, word_overlap
from core.masks import mask_iou
from review import queue, selectors, services
from review.disagreements import annotation_differences, reviews_disagree
from review.models import Disagreement
from tests.factories import make_annotation, rect_mask_rle
from tests.review.conftest import accept_each, human_answer, image_in_review

KEY = "6f1c2a34-1111-4222-8333-444455556666"


def element(phrase, box=None, mask=None, **extra):
    out = {"phrase": phrase, **extra}
    if box:
        out["box"] = box
    if mask:
        out["mask"] = mask
    return out


def test_mask_iou_matches_pixel_counts():
    a = rect_mask_rle(40, 30, (0, 0, 20, 30))   # 600 px
    b = rect_mask_rle(40, 30, (10, 0, 30, 30))  # 600 px, 300 shared
    assert mask_iou(a, b) == pytest.approx(300 / 900)
    assert mask_iou(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sizes differ"):
        mask_iou(a, rect_mask_rle(41, 30, (0, 0, 5, 5)))


def test_every_kind_of_difference_is_found():
    m_mask, h_mask = rect_mask_rle(40, 30, (0, 0, 20, 30)), rect_mask_rle(40, 30, (10, 0, 30, 30))
    model = {
        "ces": {"label": "fear", "confidence": 0.7},
        "triplets": [{"key": KEY,
                      "background": element("stormy sea", [0, 0, 10, 10], box_score=0.8),
                      "attribute": element("dark"),
                      "subject": element("boat", [0, 0, 20, 30], m_mask, box_score=0.6, mask_score=0.9)}],
    }
    human = {
        "ces": {"label": "awe"},
        "triplets": [{"key": KEY,
                      "background": element("Stormy  SEA", [5, 0, 15, 10], status="edited"),
                      "attribute": element("dark", status="rejected"),
                      "subject": element("tiny boat", [0, 0, 20, 30], h_mask, status="edited")},
                     {"key": "00000000-0000-4000-8000-000000000001", "subject": element("gull", [1, 1, 5, 5], status="added")}],
    }
    found = {(d.field, d.role): d for d in annotation_differences(model, human)}
    assert set(found) == {("ces_label", ""), ("box", "background"), ("element_rejected", "attribute"),
                          ("element_phrase", "subject"), ("mask", "subject"), ("element_added", "subject")}
    label = found[("ces_label", "")]
    assert (label.model_value, label.model_confidence, label.human_value) == ("fear", 0.7, "awe")
    box = found[("box", "background")]
    assert box.box_iou == pytest.approx(50 / 150) and box.model_confidence == 0.8
    mask = found[("mask", "subject")]
    assert mask.mask_iou == pytest.approx(300 / 900) and mask.model_confidence == 0.9
    assert found[("element_phrase", "subject")].human_value == "tiny boat"
    assert found[("element_added", "subject")].human_value == {"phrase": "gull", "box": [1, 1, 5, 5]}
    # Case and spacing are no phrase edit; an unchanged box is no box edit.
    assert ("element_phrase", "background") not in found and ("box", "subject") not in found


def test_identical_answers_have_no_difference():
    model = {"ces": {"label": "awe"}, "triplets": [{"key": KEY, "subject": element("boat", [0, 0, 5, 5])}]}
    human = {"ces": {"label": "awe"}, "triplets": [{"key": KEY, "subject": element("boat", [0, 0, 5, 5], status="accepted")}]}
    assert annotation_differences(model, human) == []


def test_an_element_approved_unchecked_is_neither_agreement_nor_disagreement():
    """An annotator (under its own keys) named the subject differently and had no attribute; the
    reviewer's answer holds the merged answer's elements. Checked, they differ; unchecked, nobody
    looked: no row either way."""
    model = {"ces": {"label": "fear"}, "triplets": [{"key": "its-own", "background": element("stormy sea"),
                                                      "subject": element("lone boat")}]}

    def human(status):
        return {"ces": {"label": "fear"}, "triplets": [{"key": KEY, "background": element("stormy sea", status=status),
                                                        "attribute": element("dark", status=status),
                                                        "subject": element("small boat", status=status)}]}

    checked = {(d.field, d.role) for d in annotation_differences(model, human("accepted"))}
    assert checked == {("element_phrase", "subject"), ("element_added", "attribute")}
    assert annotation_differences(model, human("accepted_unchecked")) == []


def test_a_removed_box_counts_as_iou_zero():
    model = {"triplets": [{"key": KEY, "subject": element("boat", [0, 0, 5, 5])}]}
    human = {"triplets": [{"key": KEY, "subject": element("boat")}]}
    [d] = annotation_differences(model, human)
    assert (d.field, d.box_iou, d.human_value) == ("box", 0.0, None)


def test_triplets_under_other_keys_are_aligned_by_phrase_and_box():
    model = [{"key": "a", "subject": element("small boat", [0, 0, 10, 10])}, {"key": "b", "subject": element("lighthouse")}]
    human = [{"key": "x", "subject": element("lighthouse")}, {"key": "y", "subject": element("boat", [0, 0, 10, 10])},
             {"key": "z", "subject": element("moon")}]
    pairs = {(p.a or {}).get("key"): (p.b or {}).get("key") for p in align_triplets(model, human).pairs}
    assert pairs == {"a": "y", "b": "x", None: "z"}


def test_an_annotators_short_phrases_align_with_the_elaborated_answer_a_reviewer_kept():
    """The demo's motorcycle: gpt-4o said "garage / gleaming, powerful / red motorcycle"
    (no boxes); the reviewer kept the pipeline's elaborated triplet. One triplet, and the
    differences are phrase edits, not three rejected plus three added elements."""
    model = {"ces": {"label": "excitement"}, "triplets": [{"key": "m1", "background": element("garage"),
                                                            "attribute": element("gleaming, powerful"),
                                                            "subject": element("red motorcycle")}]}
    human = {"ces": {"label": "excitement"}, "triplets": [{
        "key": "p1", "background": element("cluttered garage with metal shelves", [0, 0, 741, 500], status="accepted"),
        "attribute": element("gleaming, ready to ride", status="accepted"),
        "subject": element("Red motorcycle", [90, 75, 690, 450], status="accepted")}]}
    assert [((p.a or {}).get("key"), (p.b or {}).get("key"))
            for p in align_triplets(model["triplets"], human["triplets"]).pairs] == [("m1", "p1")]
    fields = sorted((d.field, d.role) for d in annotation_differences(model, human))
    assert fields == [("element_phrase", "attribute"), ("element_phrase", "background")]  # no "box" rows: gpt-4o gives none
    # Unrelated phrases stay apart.
    other = [{"key": "o", "background": element("stormy sea"), "attribute": element("dark, churning"),
              "subject": element("small boat")}]
    assert triplet_similarity(other[0], human["triplets"][0]) == 0.0
    assert word_overlap("the garage", "garage, cluttered") == 1.0 and word_overlap("", "garage") == 0.0


def review(label="awe", *subjects):
    return {"ces": {"label": label}, "triplets": [{"key": k, "subject": e} for k, e in subjects]}


def test_reviews_disagree_on_label_decision_or_kept_elements():
    a = review("awe", (KEY, element("boat", status="accepted")))
    same = review("awe", (KEY, element("  Boat ", status="edited")))
    b = review("awe", (KEY, element("a boat", status="edited")))
    c = review("awe", (KEY, element("boat", status="rejected")))
    d = {"ces": {"label": "fear"}, "triplets": a["triplets"]}
    added = {"ces": {"label": "awe"}, "triplets": a["triplets"] + [{"key": "k2", "subject": element("gull", status="added")}]}
    assert not reviews_disagree([a, same], ["approved", "approved"])  # case and spaces only
    assert reviews_disagree([a, b], ["approved", "approved"])  # a phrase edited by one reviewer
    assert reviews_disagree([a, added], ["approved", "approved"])  # an element only one reviewer added
    assert reviews_disagree([a, c], ["approved", "approved"])
    assert reviews_disagree([a, d], ["approved", "approved"])
    assert reviews_disagree([a, a], ["approved", "flagged"])


def test_reviews_agree_on_the_same_additions_under_different_keys():
    base = [(KEY, element("boat", status="accepted"))]
    one = review("awe", *base, ("k-ann", element("Gull", [1, 1, 5, 5], status="added")))
    two = review("awe", *base, ("k-bob", element("gull", [1, 1, 5, 6], status="added")))
    other = review("awe", *base, ("k-bob", element("kite", status="added")))
    assert not reviews_disagree([one, two], ["approved"] * 2)
    assert reviews_disagree([one, other], ["approved"] * 2)


def test_reviews_disagree_when_a_kept_box_or_mask_was_redrawn_apart():
    box = review("awe", (KEY, element("boat", [0, 0, 100, 100], rect_mask_rle(200, 200, (0, 0, 100, 100)), status="accepted")))
    nudged = review("awe", (KEY, element("boat", [0, 0, 100, 110], rect_mask_rle(200, 200, (0, 0, 100, 105)), status="edited")))
    moved = review("awe", (KEY, element("boat", [50, 50, 150, 150], rect_mask_rle(200, 200, (0, 0, 100, 100)), status="edited")))
    repainted = review("awe", (KEY, element("boat", [0, 0, 100, 100], rect_mask_rle(200, 200, (0, 0, 100, 40)), status="edited")))
    assert not reviews_disagree([box, nudged], ["approved"] * 2)  # IoU 0.91 and 0.95
    assert reviews_disagree([box, moved], ["approved"] * 2)  # box IoU 0.14
    assert reviews_disagree([box, repainted], ["approved"] * 2)  # mask IoU 0.4
    assert not reviews_disagree([box, repainted], ["approved"] * 2, min_iou=0.3)
    both_rejected = [review("awe", (KEY, element(p, [i, i, 9, 9], status="rejected"))) for i, p in ((0, "a"), (5, "b"))]
    assert not reviews_disagree(both_rejected, ["approved"] * 2)


@pytest.mark.django_db
def test_submit_logs_rows_against_every_model_with_the_ious(dataset, reviewer):
    image = image_in_review(dataset)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    answer = human_answer(payload, label="sadness")
    w, h = image.width, image.height
    subject = answer["triplets"][0]["subject"]
    base_mask = subject["mask"]
    subject["mask"] = rect_mask_rle(w, h, (w // 4, h // 4, w // 2 + 8, h // 2))
    subject["status"] = "edited"
    result = services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"],
                                    decision="approved", annotation=answer)

    rows = Disagreement.objects.filter(annotation=result.annotation)
    assert result.disagreements == rows.count()
    by_model = {}
    for row in rows:
        by_model.setdefault(row.model_name, set()).add(row.field)
    assert by_model == {PIPELINE_AUTHOR: {"ces_label", "mask"}, "gpt-4o": {"ces_label", "mask"},
                        "gemini-2.5": {"ces_label", "mask", "element_phrase"}}
    mask_row = rows.get(model_name=PIPELINE_AUTHOR, field="mask")
    old = mask_utils.decode({"size": base_mask["size"], "counts": base_mask["counts"].encode()})
    new = mask_utils.decode({"size": subject["mask"]["size"], "counts": subject["mask"]["counts"].encode()})
    expected = np.logical_and(old, new).sum() / np.logical_or(old, new).sum()
    assert mask_row.mask_iou == pytest.approx(expected)
    assert mask_row.model_confidence == 0.9 and mask_row.reviewer == reviewer and mask_row.kind == "review"
    label_row = rows.get(model_name="gemini-2.5", field="ces_label")
    assert (label_row.model_value, label_row.human_value, label_row.dataset) == ("awe", "sadness", dataset)
    assert str(mask_row.triplet_key) == answer["triplets"][0]["key"] and mask_row.role == "subject"


PARAPHRASES = {"stormy sea": "rough ocean", "dark, churning": "menacing, restless", "small boat": "tiny vessel"}


def _annotator_paraphrases(dataset):
    """An image whose gpt-4o answer says the pipeline's triplet in other words (no boxes)."""
    image = image_in_review(dataset, annotators=False)
    roles = dict(zip(("background", "attribute", "subject"), PARAPHRASES.values()))
    make_annotation(image, author_name="gpt-4o", payload={
        "triplets": [{role: {"phrase": phrase} for role, phrase in roles.items()}], "ces": {"label": "fear"}, "rationale": ""})
    return image


def _submit_unchanged(dataset, reviewer):
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    payload = selectors.lease_payload(lease)
    answer = human_answer(payload)
    result = services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"],
                                    decision="approved", annotation=answer, element_decisions=accept_each(answer))
    return Disagreement.objects.filter(annotation=result.annotation, model_name="gpt-4o")


@pytest.mark.django_db
def test_a_paraphrase_is_logged_as_a_phrase_edit_once_embeddings_are_stored(dataset, reviewer):
    """gpt-4o's "rough ocean / menacing, restless / tiny vessel" is the pipeline's "stormy sea /
    dark, churning / small boat" in other words. By words the log had three elements rejected
    plus three added; with the phrases' embeddings it has three phrase edits, paired by meaning."""
    _annotator_paraphrases(dataset)
    by_words = _submit_unchanged(dataset, reviewer)
    assert sorted(by_words.values_list("field", flat=True)) == ["element_added"] * 3 + ["element_rejected"] * 3
    assert set(by_words.values_list("paired_by", flat=True)) == {""}

    axes = np.eye(3)
    phrases = [p for pair in PARAPHRASES.items() for p in pair]
    phrase_embeddings_store(model_name=phrase_model_name(), phrases=phrases, vectors=np.repeat(axes, 2, axis=0))
    _annotator_paraphrases(dataset)
    by_meaning = _submit_unchanged(dataset, reviewer)
    assert sorted(by_meaning.values_list("field", "role")) == [
        ("element_phrase", "attribute"), ("element_phrase", "background"), ("element_phrase", "subject")]
    assert set(by_meaning.values_list("paired_by", flat=True)) == {"meaning"}
    row = by_meaning.get(role="subject")
    assert (row.model_value, row.human_value) == ("tiny vessel", "small boat")


def test_reviews_that_added_the_same_element_in_other_words_agree_by_meaning():
    base = [(KEY, element("boat", status="accepted"))]
    one = review("awe", *base, ("k-ann", element("seagull", status="added")))
    two = review("awe", *base, ("k-bob", element("gull", status="added")))
    assert reviews_disagree([one, two], ["approved"] * 2)  # by words: different additions
    vectors = PhraseVectors({"seagull": [1.0, 0.0], "gull": [0.9, 0.1], "boat": [0.0, 1.0]})
    assert not reviews_disagree([one, two], ["approved"] * 2, vectors=vectors)
