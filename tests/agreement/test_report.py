"""The agreement report built from the database, checked against independent computations
(the ``krippendorff`` package, textbook formulas written out here) on known reviews."""

from __future__ import annotations

import datetime as dt
import itertools

import krippendorff
import numpy as np
import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from agreement.report import agreement_report
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters
from annotations.models import AnnotationKind, Decision, PhraseEmbedding
from annotations.phrase_embeddings import phrase_model_name
from core.vocabulary import EMOTIONS
from ml.config import reset_registry
from ml.embeddings import embed_dataset_phrases
from tests.agreement.scenes import (
    CONFIDENCE,
    LABELS,
    MODELS,
    REVIEWERS,
    H,
    W,
    build_scene,
    majority,
    payload,
)
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation

# Every test is marked, so the test database is set up even when only the tests sharing the
# module-scoped report are selected (pytest-django sets up databases for marked tests only).
pytestmark = pytest.mark.django_db
OPTIONS = ReportOptions(n_resamples=200, seed=7, min_shared=5, semantic_model="test-embedder")
CODE = {e: i for i, e in enumerate(EMOTIONS)}


def _codes(labels):
    return [np.nan if v is None else CODE[v] for v in labels]


def textbook_cohen(a, b):
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in set(a) | set(b))
    return (po - pe) / (1 - pe)


def textbook_fleiss(items):
    """``items``: list of rating lists, the same number of ratings each (Fleiss 1971)."""
    n, cats = len(items[0]), sorted({c for item in items for c in item})
    p_i = [(sum(item.count(c) ** 2 for c in cats) - n) / (n * (n - 1)) for item in items]
    p_j = [sum(item.count(c) for item in items) / (len(items) * n) for c in cats]
    p_bar, p_e = sum(p_i) / len(items), sum(p * p for p in p_j)
    return (p_bar - p_e) / (1 - p_e)


@pytest.fixture
def scene():
    return build_scene()


@pytest.fixture(scope="module")
def report(django_db_setup, django_db_blocker, tmp_path_factory):
    """The scene's report, built once for the read-only tests and rolled back."""
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("media")):
        with transaction.atomic():
            result = agreement_report(dataset=build_scene().dataset, options=OPTIONS)
            transaction.set_rollback(True)
    return result


def _interval_ok(stat):
    assert stat["low"] <= stat["value"] <= stat["high"], stat


def test_label_alpha_matches_krippendorff_package_with_missing_data(report):
    data = np.array([_codes(LABELS[r]) for r in REVIEWERS])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    alpha = report["labels"]["krippendorff_alpha"]
    assert alpha["value"] == pytest.approx(expected, abs=1e-9)
    assert alpha["n"] == 10
    _interval_ok(alpha)


def test_fleiss_kappa_on_items_with_three_ratings(report):
    items = [[LABELS[r][i] for r in REVIEWERS] for i in range(9)]  # image 9 has two ratings only
    fleiss = report["labels"]["fleiss_kappa"]
    assert fleiss["raters"] == 3 and fleiss["n"] == 9
    assert fleiss["value"] == pytest.approx(textbook_fleiss(items), abs=1e-9)
    _interval_ok(fleiss)


def test_cohen_kappa_for_every_pair(report):
    pairs = {(p["a"], p["b"]): p for p in report["labels"]["pairwise_cohen_kappa"]}
    assert set(pairs) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    for (a, b), pair in pairs.items():
        shared = [i for i in range(10) if LABELS[a][i] and LABELS[b][i]]
        la, lb = [LABELS[a][i] for i in shared], [LABELS[b][i] for i in shared]
        assert pair["n"] == len(shared)
        assert pair["kappa"]["value"] == pytest.approx(textbook_cohen(la, lb), abs=1e-9)
        assert pair["observed_agreement"] == pytest.approx(np.mean([x == y for x, y in zip(la, lb)]))
        _interval_ok(pair["kappa"])


def test_pair_below_min_shared_is_undefined_with_reason(scene):
    report = agreement_report(dataset=scene.dataset, options=ReportOptions(n_resamples=50, min_shared=10))
    pairs = {(p["a"], p["b"]): p["kappa"] for p in report["labels"]["pairwise_cohen_kappa"]}
    assert pairs[("alice", "bob")]["value"] is not None  # 10 shared
    assert pairs[("alice", "carol")] == {"value": None, "undefined": "9 shared items; at least 10 needed", "n": 9}


def test_confusion_matrix_counts(report):
    matrices = {(c["a"], c["b"]): c for c in report["labels"]["confusion"]}
    ab = matrices[("reviewer:alice", "reviewer:bob")]
    assert ab["n"] == 10
    m = np.array(ab["matrix"])
    assert m.sum() == 10 and np.trace(m) == 8
    assert m[CODE["awe"], CODE["contentment"]] == 1  # image 3
    assert m[CODE["fear"], CODE["sadness"]] == 1  # image 8
    assert m[CODE["fear"], CODE["fear"]] == 2
    model = matrices[("reviewer:alice", "model:qwen")]
    assert model["n"] == 10 and np.trace(model["matrix"]) == sum(x == y for x, y in zip(LABELS["alice"], MODELS["qwen"]))


def test_per_class_specific_agreement(report):
    rows = {r["label"]: r for r in report["labels"]["per_class"]}
    # anger: image 5 (anger, anger, disgust): 2 agreeing ordered pairs of 4 involving anger.
    assert rows["anger"]["specific_agreement"] == pytest.approx(2 / 4)
    assert rows["sadness"]["specific_agreement"] == pytest.approx((6 + 0) / (6 + 2))  # image 4 unanimous; image 8
    assert rows["amusement"]["specific_agreement"] == pytest.approx(1.0)


def test_confidence_alpha_interval_level(report):
    data = np.array([[np.nan if v is None else v for v in CONFIDENCE[r]] for r in REVIEWERS])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert report["confidence"]["krippendorff_alpha_interval"]["value"] == pytest.approx(expected, abs=1e-9)


def test_models_against_human_reference(report):
    reference = [majority([LABELS[r][i] for r in REVIEWERS]) for i in range(10)]
    rows = {m["model"]: m for m in report["models"]}
    assert set(rows) == set(MODELS)
    for name, labels in MODELS.items():
        row = rows[name]
        assert row["n"] == 10
        assert row["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(labels, reference)]))
        assert row["kappa"]["value"] == pytest.approx(textbook_cohen(reference, labels), abs=1e-9)
        data = np.array([_codes(LABELS[r]) for r in REVIEWERS] + [_codes(labels)])
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert row["alpha_with_reviewers"]["value"] == pytest.approx(expected, abs=1e-9)
        assert np.array(row["confusion"]["matrix"]).sum() == 10


def test_element_decisions(report):
    elements = report["elements"]
    # 10 images x 3 roles; carol rejected image 1's attribute.
    data = np.ones((3, 30))
    data[2, 27:] = np.nan  # carol did not review image 9 (units ordered image by image)
    data[2, 1 * 3 + 1] = 0.0
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert elements["elements"] == 30
    assert elements["decision_alpha"]["value"] == pytest.approx(expected, abs=1e-9)
    assert elements["unanimous"] == pytest.approx(29 / 30)
    assert elements["decision_fleiss_kappa"]["raters"] == 3


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_box_and_mask_iou_between_reviewers(report):
    from tests.agreement.scenes import IMAGE0_SUBJECT

    image0 = [_iou(IMAGE0_SUBJECT[a][0], IMAGE0_SUBJECT[b][0]) for a, b in itertools.combinations(REVIEWERS, 2)]
    assert sorted(image0) == [0.25, 0.5, 0.5]
    # Boxes: background 9 images x 3 pairs + 1 pair = 28 identical; subject 25 identical + image 0.
    # Masks: the subject only (rectangle masks, so mask IoU equals box IoU).
    for name, identical in (("box_iou", 28 + 25), ("mask_iou", 25)):
        expected = np.array([1.0] * identical + image0)
        summary = report["elements"][name]
        assert summary["count"] == len(expected)
        assert summary["mean"] == pytest.approx(expected.mean())
        assert summary["median"] == 1.0
        assert summary["histogram"]["counts"][9] == identical
        assert summary["histogram"]["counts"][5] == 2 and summary["histogram"]["counts"][2] == 1


def test_phrase_agreement_exact_after_normalisation(report):
    exact = report["elements"]["phrase_exact"]
    assert exact["n"] == 28 + 26 + 28
    assert exact["value"] == pytest.approx(80 / 82)  # "Small  Boat" equals "small boat"; "tiny vessel" does not
    semantic = report["elements"]["phrase_semantic"]
    assert semantic["value"] is None and "manage.py embed_phrases" in semantic["undefined"]


def test_filters_reviewers_source_label_and_dates(scene):
    two = agreement_report(dataset=scene.dataset, filters=ReportFilters(reviewers=("alice", "bob")), options=OPTIONS)
    assert two["counts"]["reviewers"] == ["alice", "bob"]
    assert [(p["a"], p["b"]) for p in two["labels"]["pairwise_cohen_kappa"]] == [("alice", "bob")]
    assert two["labels"]["fleiss_kappa"]["raters"] == 2 and two["labels"]["fleiss_kappa"]["n"] == 10

    scene.images[0].__class__.objects.filter(pk__in=[i.pk for i in scene.images[:4]]).update(source="web", label="fear")
    web = agreement_report(dataset=scene.dataset, filters=ReportFilters(source="web"), options=OPTIONS)
    assert web["counts"]["images"] == 4
    fear = agreement_report(dataset=scene.dataset, filters=ReportFilters(label="fear"), options=OPTIONS)
    assert fear["counts"]["images"] == 4

    tomorrow = dt.date.today() + dt.timedelta(days=1)
    later = agreement_report(dataset=scene.dataset, filters=ReportFilters(date_from=tomorrow), options=OPTIONS)
    assert later["counts"]["reviewers"] == []
    assert later["labels"]["krippendorff_alpha"] == {"value": None, "undefined": "no item has two or more values", "n": 0}
    assert later["elements"]["decision_alpha"]["value"] is None
    assert later["elements"]["box_iou"]["undefined"]


def test_undefined_when_every_reviewer_gives_the_same_label():
    dataset = DatasetFactory(slug="same")
    users = [UserFactory(username=f"r{i}") for i in range(2)]
    for i in range(3):
        image = ImageFactory(dataset=dataset, width=W, height=H)
        for user in users:
            make_annotation(image, kind=AnnotationKind.HUMAN, author_name=user.username, author_user=user,
                            payload=payload("awe", f"00000000-0000-0000-0000-00000000000{i}"), decision=Decision.APPROVED)
    report = agreement_report(dataset=dataset, options=ReportOptions(n_resamples=20, min_shared=2))
    alpha = report["labels"]["krippendorff_alpha"]
    assert alpha["value"] is None and "equal" in alpha["undefined"]
    kappa = report["labels"]["pairwise_cohen_kappa"][0]["kappa"]
    assert kappa["value"] is None and "one and the same category" in kappa["undefined"]
    assert report["models"] == []


def test_report_query_count_does_not_grow_with_images(scene):
    def queries():
        with CaptureQueriesContext(connection) as ctx:
            agreement_report(dataset=scene.dataset, options=ReportOptions(n_resamples=10))
        return len(ctx.captured_queries)

    before = queries()
    for _ in range(5):
        image = ImageFactory(dataset=scene.dataset, width=W, height=H)
        for name in REVIEWERS:
            make_annotation(image, kind=AnnotationKind.HUMAN, author_name=name, author_user=scene.users[name],
                            payload=payload("awe", "00000000-0000-0000-0000-0000000000ff"), decision=Decision.APPROVED)
    assert queries() == before


def test_cached_report_is_reused_until_the_data_changes(scene):
    from agreement.report_cache import cached_agreement_report

    options = ReportOptions(n_resamples=10)
    first = cached_agreement_report(dataset=scene.dataset, options=options)
    assert cached_agreement_report(dataset=scene.dataset, options=options)["generated_at"] == first["generated_at"]
    other = cached_agreement_report(dataset=scene.dataset, filters=ReportFilters(reviewers=("alice",)), options=options)
    assert other["counts"]["reviewers"] == ["alice"]
    make_annotation(scene.images[9], kind=AnnotationKind.HUMAN, author_name="carol", author_user=scene.users["carol"],
                    payload=payload("excitement", scene.keys[9]), decision=Decision.APPROVED)
    again = cached_agreement_report(dataset=scene.dataset, options=options)
    assert again["generated_at"] != first["generated_at"]
    assert again["labels"]["fleiss_kappa"]["n"] == 10  # carol's new review completes image 9


def test_reviews_submitted_through_the_review_queue_line_up():
    """Two reviewers take the same items from the queue (K = 2) and submit; the report pairs
    their labels and elements by the pipeline's triplet keys."""
    from annotations.domain import PIPELINE_AUTHOR
    from annotations.selectors import annotation_to_dict
    from review.queue import lease_next
    from review.services import review_submit
    from tests.factories import annotation_payload

    dataset = DatasetFactory(slug="queue", reviews_per_item=2, overlap_fraction=1.0)
    users = [UserFactory(username=n, roles=["reviewer"]) for n in ("ann", "ben")]
    for _ in range(3):
        image = ImageFactory(dataset=dataset, width=W, height=H)
        make_annotation(image, kind=AnnotationKind.MODEL, author_name=PIPELINE_AUTHOR,
                        payload=annotation_payload(W, H, label="fear"))
    answers = {"ann": ["fear", "awe", "fear"], "ben": ["fear", "awe", "sadness"]}
    for user in users:
        for _ in range(3):
            lease = lease_next(dataset=dataset, reviewer=user)
            base = annotation_to_dict(lease.image.annotations.get(author_name=PIPELINE_AUTHOR), include_des=False)
            index = sorted(i.pk for i in dataset.images.all()).index(lease.image_id)
            base["ces"]["label"] = answers[user.username][index]
            base["ces"]["distribution"] = None
            base["ces"]["confidence"] = None
            if user.username == "ben" and index == 0:
                base["triplets"][0]["subject"]["status"] = "rejected"
            checked = [{"triplet_key": t["key"], "role": role,
                        "action": "reject" if t[role].get("status") == "rejected" else "accept"}
                       for t in base["triplets"] for role in ("background", "attribute", "subject") if role in t]
            review_submit(lease=lease, reviewer=user, expected_version=lease.version, decision=Decision.APPROVED,
                          annotation=base, element_decisions=checked)
    report = agreement_report(dataset=dataset, options=ReportOptions(n_resamples=20, min_shared=3))
    pair = report["labels"]["pairwise_cohen_kappa"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("ann", "ben", 3)
    assert pair["observed_agreement"] == pytest.approx(2 / 3)
    elements = report["elements"]
    assert elements["elements"] == 9  # 3 images x 3 roles, keys shared through the pipeline's answer
    assert elements["unanimous"] == pytest.approx(8 / 9)
    assert elements["box_iou"]["count"] == 3 + 2 and elements["box_iou"]["mean"] == 1.0  # background x3, subject x2


def test_model_elements_against_each_reviewer(report):
    rows = {m["model"]: m["elements"] for m in report["models"]}
    for model in MODELS:
        elements = rows[model]
        # 29 (image, reviewer) reviews x 3 roles; carol rejected image 1's attribute.
        assert elements["decisions"] == 87
        assert elements["kept_by_reviewers"] == pytest.approx(86 / 87)
        box = elements["box_iou"]
        assert box["count"] == 58 and box["mean"] == pytest.approx((56 + 0.5 + 0.5) / 58)
        assert elements["mask_iou"]["count"] == 29
        assert elements["phrase_exact"]["value"] == pytest.approx(85 / 86)


def test_annotators_with_their_own_triplet_keys_are_aligned():
    """As the pipeline stores them: each annotator's answer under fresh keys and without boxes,
    the merged ``pipeline`` answer under the key the reviews keep. Every statistic that has data
    is defined, and equals what the same phrases under shared keys give."""
    from annotations.domain import PIPELINE_AUTHOR

    scene = build_scene(slug="own", model_keys="own")
    report = agreement_report(dataset=scene.dataset, options=OPTIONS)
    rows = {m["model"]: m["elements"] for m in report["models"]}
    assert set(rows) == {*MODELS, PIPELINE_AUTHOR}
    for model in (*MODELS, PIPELINE_AUTHOR):
        elements = rows[model]
        assert elements["decisions"] == 87  # 29 reviews x 3 roles
        assert elements["kept_by_reviewers"] == pytest.approx(86 / 87)  # carol rejected image 1's attribute
        assert elements["phrase_exact"]["value"] == pytest.approx(85 / 86)  # carol's "tiny vessel" on image 0
        assert elements["phrase_exact"]["n"] == 86
    for model in MODELS:  # phrases only: box and mask IoU are undefined, and say why
        assert rows[model]["box_iou"]["count"] == 0 and "no element has a box" in rows[model]["box_iou"]["undefined"]
    assert rows[PIPELINE_AUTHOR]["box_iou"]["count"] == 58


def test_annotator_triplets_are_paired_by_phrase_not_by_order():
    """Two triplets per image, the annotator's in the other order and under its own keys; one
    reviewer edits a phrase, the other drops a whole triplet."""
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2)
    users = [UserFactory(username=n) for n in ("ann", "ben")]
    image = ImageFactory(dataset=dataset, width=W, height=H)

    def triplet(key, background, attribute, subject, status="accepted"):
        return {"key": key, **{role: {"phrase": phrase, "status": status} for role, phrase in
                               (("background", background), ("attribute", attribute), ("subject", subject))}}

    sea = ("stormy sea", "dark, churning", "small boat")
    field = ("green field", "bright, calm", "lone tree")
    keys = ("00000000-0000-0000-0000-0000000000b1", "00000000-0000-0000-0000-0000000000b2")
    model = {"triplets": [triplet("00000000-0000-0000-0000-0000000000c1", *field, status="pending"),
                          triplet("00000000-0000-0000-0000-0000000000c2", *sea, status="pending")],
             "ces": {"label": "awe"}}
    make_annotation(image, kind=AnnotationKind.MODEL, author_name="gemini", payload=model)
    ann = {"triplets": [triplet(keys[0], *sea), triplet(keys[1], "green field", "bright, calm", "old oak", status="edited")]}
    ben = {"triplets": [triplet(keys[0], *sea)]}
    for user, answer in zip(users, (ann, ben)):
        answer["ces"] = {"label": "awe"}
        make_annotation(image, kind=AnnotationKind.HUMAN, author_name=user.username, author_user=user, payload=answer,
                        decision=Decision.APPROVED)
    report = agreement_report(dataset=dataset, options=ReportOptions(n_resamples=10, min_shared=1))
    elements = next(m for m in report["models"] if m["model"] == "gemini")["elements"]
    assert elements["decisions"] == 12  # 2 triplets x 3 roles x 2 reviewers
    assert elements["kept_by_reviewers"] == pytest.approx(9 / 12)  # ben dropped the field triplet
    # ann: 6 pairs, "lone tree" vs "old oak" differs; ben: 3 pairs of the sea triplet.
    assert elements["phrase_exact"]["n"] == 9 and elements["phrase_exact"]["value"] == pytest.approx(8 / 9)


def test_calibration_section_per_model_before_and_after_the_latest_temperature(scene):
    """Every scene answer says its label at .95 (raw = saved: no temperature existed). ECE before is
    |accuracy - .95| in the last of 15 bins; after the stored T = 2 it is |accuracy - scaled confidence|."""
    from agreement.report_cache import cached_agreement_report
    from ml.services import calibration_version_create
    from ml.stages.calibration import temperature_scale
    from tests.factories import distribution_for

    reference = [majority([LABELS[r][i] for r in REVIEWERS]) for i in range(10)]
    options = ReportOptions(n_resamples=10)
    section = {m["model"]: m for m in cached_agreement_report(dataset=scene.dataset, options=options)["calibration"]["models"]}
    assert set(section) == set(MODELS)
    accuracy = {name: np.mean([a == b for a, b in zip(labels, reference)]) for name, labels in MODELS.items()}
    for name in MODELS:
        row = section[name]
        assert row["n"] == 10 and row["n_without_raw"] == 0
        assert row["ece_before"] == pytest.approx(abs(accuracy[name] - 0.95))
        assert row["reliability"]["before"]["counts"][14] == 10 and sum(row["reliability"]["before"]["counts"]) == 10
        assert row["temperature"] is None and row["ece_after"] is None and "no calibration version" in row["notes"][0]

    calibration_version_create(model_name="gpt-4o", temperature=2.0, n_samples=10, ece_before=None, ece_after=None,
                               reliability={}, created_by=None)
    report = cached_agreement_report(dataset=scene.dataset, options=options)  # a new version: not the cached report
    gpt = next(m for m in report["calibration"]["models"] if m["model"] == "gpt-4o")
    scaled = max(temperature_scale(distribution_for("fear", 0.95), 2.0).values())
    assert gpt["temperature"] == 2.0
    assert gpt["ece_after"] == pytest.approx(abs(accuracy["gpt-4o"] - scaled))
    assert sum(gpt["reliability"]["after"]["counts"]) == 10
    # The report's filters apply: two reviewers, image source.
    two = agreement_report(dataset=scene.dataset, filters=ReportFilters(reviewers=("alice", "carol")), options=options)
    adjudicated = {1, 3, 5, 8}  # the reviewers' disagreements; adjudications are not filtered by reviewer
    pair_reference = [majority([LABELS[r][i] for r in ("alice", "carol")]) for i in range(10)]
    n = sum(i in adjudicated or label is not None for i, label in enumerate(pair_reference))
    assert next(m for m in two["calibration"]["models"] if m["model"] == "qwen")["n"] == n
    scene.images[0].__class__.objects.filter(pk__in=[i.pk for i in scene.images[:4]]).update(source="web")
    web = agreement_report(dataset=scene.dataset, filters=ReportFilters(source="web"), options=options)
    assert all(m["n"] == 4 for m in web["calibration"]["models"])


def test_model_phrases_are_embedded_for_semantic_similarity(settings):
    """A model phrase no reviewer wrote ("little boat") gets a vector too (a worker embeds every
    phrase of the dataset), so the model's semantic similarity covers every aligned pair."""
    settings.EMOVERSE_ML = {**settings.EMOVERSE_ML, "embedder": {"backend": "tests.ml.stage_fakes.FakeEmbedder"}}
    reset_registry()
    dataset = DatasetFactory(slug="semantic", reviews_per_item=2)
    image = ImageFactory(dataset=dataset, width=W, height=H)
    answer = payload("fear", "00000000-0000-0000-0000-0000000000d1", subject_phrase="little boat")
    for element in answer["triplets"][0].values():
        if isinstance(element, dict):
            element.pop("box", None), element.pop("mask", None)
    make_annotation(image, kind=AnnotationKind.MODEL, author_name="gpt-4o", payload=answer)
    for name in ("ann", "ben"):
        make_annotation(image, kind=AnnotationKind.HUMAN, author_name=name, author_user=UserFactory(username=name),
                        payload=payload("fear", "00000000-0000-0000-0000-0000000000d2"), decision=Decision.APPROVED)
    result = embed_dataset_phrases(dataset_id=dataset.pk)
    assert result.phrases == result.stored == 4  # "stormy sea", "dark, churning", "small boat" and the model's "little boat"
    # The fake embedder gives unrelated phrases near-orthogonal vectors: set "little boat" at cosine 0.4 to "small boat".
    small = np.frombuffer(PhraseEmbedding.objects.get(text="small boat").vector, dtype="<f4")
    other = np.frombuffer(PhraseEmbedding.objects.get(text="stormy sea").vector, dtype="<f4")
    other = other - (other @ small) * small
    little = 0.4 * small + np.sqrt(1 - 0.4**2) * other / np.linalg.norm(other)
    PhraseEmbedding.objects.filter(text="little boat").update(vector=little.astype("<f4").tobytes())
    report = agreement_report(dataset=dataset, options=ReportOptions(n_resamples=10, semantic_model=phrase_model_name()))
    model = report["models"][0]["elements"]
    semantic = model["phrase_semantic"]
    assert semantic["n"] == 6 and semantic["missing_pairs"] == 0  # 3 roles x 2 reviewers
    assert semantic["value"] == pytest.approx((4 * 1.0 + 2 * 0.4) / 6, abs=1e-5)
    assert semantic["share_similar"] == pytest.approx(4 / 6)  # 0.4 is below SAME_MEANING_COSINE
    assert model["aligned_by_words"] == 0  # the model's triplet (its own key) paired by meaning with each review
    reset_registry()
