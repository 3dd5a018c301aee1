"""The agreement report of an Ekman dataset is over Ekman's six labels (docs/taxonomies.md)."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from agreement.report import agreement_report
from annotations.models import AnnotationKind, Decision
from core.vocabulary import EKMAN
from tests.factories import DatasetFactory, ImageFactory, UserFactory, annotation_payload, make_annotation

pytestmark = pytest.mark.django_db

ALICE = ["happiness", "fear", "surprise", "sadness", "anger", "happiness"]
BOB = ["happiness", "fear", "happiness", "sadness", "disgust", "happiness"]
CODE = {e: i for i, e in enumerate(EKMAN.labels)}


def six_way(label: str) -> dict[str, float]:
    return {e: (0.75 if e == label else 0.05) for e in EKMAN.labels}


def ekman_payload(image, label: str) -> dict:
    data = annotation_payload(image.width, image.height)
    data["ces"] = {"label": label, "confidence": 0.75, "distribution": six_way(label)}
    return data


@pytest.fixture(autouse=True)
def _few_resamples(settings):
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 100


@pytest.fixture
def ekman_study():
    dataset = DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec(), reviews_per_item=2, overlap_fraction=1.0)
    users = {name: UserFactory(username=name, roles=["reviewer"]) for name in ("alice", "bob")}
    for i, (a, b) in enumerate(zip(ALICE, BOB, strict=True)):
        image = ImageFactory(dataset=dataset, seed=300 + i)
        make_annotation(image, author_name="gpt-4o", payload=ekman_payload(image, a), raw_distribution=six_way(a))
        for name, label in (("alice", a), ("bob", b)):
            make_annotation(image, kind=AnnotationKind.HUMAN, author_name=name, author_user=users[name],
                            payload=ekman_payload(image, label), decision=Decision.APPROVED)
    return dataset


def test_the_report_counts_six_classes_and_its_matrices_are_six_by_six(ekman_study):
    report = agreement_report(dataset=ekman_study)
    labels = report["labels"]
    assert report["dataset"]["taxonomy"] == "ekman"
    assert labels["categories"] == list(EKMAN.labels)
    assert [row["label"] for row in labels["per_class"]] == list(EKMAN.labels)
    pair = next(c for c in labels["confusion"] if (c["a"], c["b"]) == ("reviewer:alice", "reviewer:bob"))
    matrix = np.array(pair["matrix"])
    assert matrix.shape == (6, 6) and matrix.sum() == 6 and np.trace(matrix) == 4
    assert matrix[CODE["surprise"], CODE["happiness"]] == 1 and matrix[CODE["anger"], CODE["disgust"]] == 1
    # Cohen's kappa over the six classes: p_o = 4/6; p_e from the marginals.
    a = np.array([CODE[x] for x in ALICE])
    b = np.array([CODE[x] for x in BOB])
    p_e = sum((a == k).mean() * (b == k).mean() for k in range(6))
    kappa = (4 / 6 - p_e) / (1 - p_e)
    assert labels["pairwise_cohen_kappa"][0]["kappa"]["value"] == pytest.approx(kappa)
    happiness = next(r for r in labels["per_class"] if r["label"] == "happiness")
    assert happiness["specific_agreement"] == pytest.approx(2 * 2 / (2 + 3))  # both said it twice; alice 2, bob 3
    model = next(m for m in report["models"] if m["model"] == "gpt-4o")
    assert np.array(model["confusion"]["matrix"]).shape == (6, 6)


def test_the_report_page_and_csv_name_the_six_labels(client, ekman_study, researcher):
    client.force_login(researcher)
    page = client.get(reverse("agreement-report", args=["eemo"]))
    assert page.status_code == 200
    text = page.content.decode()
    assert all(label in text for label in EKMAN.labels) and "amusement" not in text
    refused = client.get(reverse("agreement-report", args=["eemo"]), {"label": "awe"})
    assert refused.status_code == 400
    assert client.get(reverse("agreement-report", args=["eemo"]), {"label": "surprise"}).status_code == 200
