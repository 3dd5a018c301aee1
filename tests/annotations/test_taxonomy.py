"""A dataset's emotion taxonomy: the built-in ones, custom ones over the API and the admin
form, the synonym map on import, and the lock once labels exist (docs/taxonomies.md)."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotations.admin import DatasetForm
from annotations.errors import InvalidAnnotation
from annotations.filters import ImageFilter
from annotations.models import Dataset, Image
from core.vocabulary import EKMAN, MIKELS, TaxonomyError, taxonomy_from_spec
from review.services import check_annotation
from tests.annotations.test_import import W, H, Workspace
from tests.factories import DatasetFactory, ImageFactory, annotation_payload, make_annotation

pytestmark = pytest.mark.django_db

VALENCE = {"name": "valence3", "labels": ["negative", "neutral", "positive"], "keys": ["j", "k", "l"],
           "positive": ["positive"], "negative": ["negative"], "synonyms": {"Good": "positive", "bad": "negative"}}


def ekman_distribution(label: str, confidence: float = 0.7) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(EKMAN.labels) - 1)
    return {e: (confidence if e == label else rest) for e in EKMAN.labels}


# ------------------------------------------------------------------------- core


def test_builtin_taxonomies_and_their_spec_round_trip():
    assert taxonomy_from_spec("mikels") is MIKELS and taxonomy_from_spec(" Ekman ") is EKMAN
    assert EKMAN.labels == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    assert EKMAN.keys == ("1", "2", "3", "4", "5", "6")
    assert taxonomy_from_spec(EKMAN.to_spec()) == EKMAN and taxonomy_from_spec(MIKELS.to_spec()) == MIKELS
    assert EKMAN.canonical(" Joy ") == "happiness" and EKMAN.canonical("scared") == "fear"
    assert EKMAN.canonical("ecstatic") is None and EKMAN.canonical("awe") is None  # never a guess
    assert EKMAN.polarity("surprise") is None and EKMAN.polarity("happiness") == "positive"


@pytest.mark.parametrize(("spec", "field", "words"), [
    ("plutchik", "taxonomy", "unknown taxonomy 'plutchik'"),
    ({"name": "x", "labels": ["calm"]}, "taxonomy.labels", "2 to"),
    ({"name": "x", "labels": ["calm", "calm"]}, "taxonomy.labels", "twice"),
    ({"name": "x", "labels": ["calm", "Not A Label!"]}, "taxonomy.labels", "is not a label"),
    ({"name": "x", "labels": ["calm", "tense"], "keys": ["a", "b"]}, "taxonomy.keys", "not free on the review page"),
    ({"name": "x", "labels": ["calm", "tense"], "keys": ["1"]}, "taxonomy.keys", "one key per label"),
    ({"name": "x", "labels": [f"l{i}" for i in range(10)]}, "taxonomy.keys", "give a key for each"),
    ({"name": "x", "labels": ["calm", "tense"], "positive": ["joy"]}, "taxonomy.positive", "not one of the labels"),
    ({"name": "x", "labels": ["calm", "tense"], "positive": ["calm"], "negative": ["calm"]}, "taxonomy.negative", "both"),
    ({"name": "x", "labels": ["calm", "tense"], "synonyms": {"relaxed": "happy"}}, "taxonomy.synonyms", "not one of the labels"),
    ({"name": "ekman", "labels": ["calm", "tense"]}, "taxonomy.labels", "built in"),
    ({"name": "x", "labels": ["calm", "tense"], "colour": "red"}, "taxonomy", "unknown key"),
])
def test_a_bad_custom_taxonomy_is_refused_naming_its_part(spec, field, words):
    with pytest.raises(TaxonomyError, match=words) as caught:
        taxonomy_from_spec(spec)
    assert caught.value.field == field


# -------------------------------------------------------------------------- API


def test_datasets_are_mikels_by_default_and_ekman_or_custom_when_created_so(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    url = reverse("api-dataset-list")
    default = api_client.post(url, {"slug": "plain", "name": "Plain"}, format="json")
    assert default.status_code == 201 and default.json()["taxonomy"]["labels"] == list(MIKELS.labels)
    ekman = api_client.post(url, {"slug": "eemo", "name": "EEmo", "taxonomy": "ekman"}, format="json")
    assert ekman.status_code == 201, ekman.content
    assert ekman.json()["taxonomy"]["labels"] == list(EKMAN.labels)
    assert Dataset.objects.get(slug="eemo").get_taxonomy() == EKMAN
    custom = api_client.post(url, {"slug": "val", "name": "Valence", "taxonomy": VALENCE}, format="json")
    assert custom.status_code == 201, custom.content
    stored = Dataset.objects.get(slug="val").get_taxonomy()
    assert (stored.name, stored.labels, stored.keys) == ("valence3", ("negative", "neutral", "positive"), ("j", "k", "l"))
    assert stored.synonyms == {"good": "positive", "bad": "negative"} and stored.polarity("neutral") is None
    assert api_client.get(reverse("api-dataset-detail", args=["val"])).json()["taxonomy"]["keys"] == ["j", "k", "l"]


def test_a_bad_taxonomy_over_the_api_is_a_400_naming_the_field(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    bad = api_client.post(reverse("api-dataset-list"),
                          {"slug": "bad", "name": "Bad", "taxonomy": {"name": "x", "labels": ["calm", "calm"]}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["field"] == "taxonomy.labels" and "twice" in bad.json()["detail"]
    unknown = api_client.post(reverse("api-dataset-list"), {"slug": "bad", "name": "Bad", "taxonomy": 7}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "taxonomy"
    assert not Dataset.objects.filter(slug="bad").exists()


def test_the_taxonomy_changes_until_a_label_exists_then_a_change_is_a_clear_400(api_client, admin_user):
    dataset = DatasetFactory(slug="lockme")
    url = reverse("api-dataset-detail", args=["lockme"])
    api_client.force_authenticate(admin_user)
    assert api_client.patch(url, {"taxonomy": "ekman"}, format="json").status_code == 200
    dataset.refresh_from_db()
    assert dataset.get_taxonomy() == EKMAN
    ImageFactory(dataset=dataset, label="happiness")
    refused = api_client.patch(url, {"taxonomy": "mikels"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["field"] == "taxonomy"
    assert "already has emotion labels" in refused.json()["detail"] and "'ekman'" in refused.json()["detail"]
    dataset.refresh_from_db()
    assert dataset.get_taxonomy() == EKMAN
    # The same taxonomy again, and other settings, still go through.
    assert api_client.patch(url, {"taxonomy": "ekman", "lease_minutes": 30}, format="json").status_code == 200


# ------------------------------------------------------------------- admin form


def test_the_admin_form_offers_the_builtins_and_a_custom_json_and_keeps_a_labelled_dataset(admin_user):
    base = {"slug": "adm", "name": "Adm", "reviews_per_item": 1, "overlap_fraction": 0, "lease_minutes": 60,
            "audit_fraction": 0.05}
    form = DatasetForm(data={**base, "taxonomy_choice": "ekman"})
    assert form.is_valid(), form.errors
    dataset = form.save()
    assert dataset.get_taxonomy() == EKMAN
    custom = DatasetForm(data={**base, "slug": "adm2", "taxonomy_choice": "custom", "custom_taxonomy": json.dumps(VALENCE)})
    assert custom.is_valid(), custom.errors
    assert custom.save().get_taxonomy().labels == ("negative", "neutral", "positive")
    broken = DatasetForm(data={**base, "slug": "adm3", "taxonomy_choice": "custom",
                               "custom_taxonomy": json.dumps({"name": "x", "labels": ["a1"]})})
    assert not broken.is_valid() and "custom_taxonomy" in broken.errors
    ImageFactory(dataset=dataset, label="fear")
    change = DatasetForm(data={**base, "taxonomy_choice": "mikels"}, instance=dataset)
    assert not change.is_valid()
    assert "already has emotion labels" in change.errors["taxonomy_choice"][0]
    assert DatasetForm(instance=dataset).initial["taxonomy_choice"] == "ekman"


# ------------------------------------------------------------ import, synonyms


def ekman_line(ws: Workspace, name: str, seed: int, label: str, distribution: dict) -> dict:
    ws.add_png(name, seed=seed)
    line = ws.line(name)
    line["ces"] = {"label": label, "confidence": 0.7, "distribution": distribution}
    return line


def test_an_ekman_import_maps_synonyms_and_reports_each_unknown_word_with_its_line(tmp_path):
    ws = Workspace(tmp_path)
    synonym_keys = {"angry": 0.05, "disgust": 0.05, "scared": 0.1, "joy": 0.6, "sad": 0.1, "surprise": 0.1}
    lines = [
        ekman_line(ws, "a.png", 1, "happiness", ekman_distribution("happiness")),
        ekman_line(ws, "b.png", 2, "Joy", synonym_keys),                        # label and keys by synonyms
        ekman_line(ws, "c.png", 3, "ecstatic", ekman_distribution("happiness")),  # unknown label
        ekman_line(ws, "d.png", 4, "fear", {**ekman_distribution("fear"), "awe": 0.0}),  # a Mikels word: unknown here
        ekman_line(ws, "e.png", 5, "joy", {"joy": 0.5, "happy": 0.5}),          # two words for one label
        ekman_line(ws, "f.png", 6, "scared", ekman_distribution("fear")),
    ]
    report = ws.run(lines, dataset="eemo", taxonomy="ekman")
    assert Dataset.objects.get(slug="eemo").get_taxonomy() == EKMAN
    assert (report.imported, report.failed) == (3, 3)
    errors = {e.line: e.reason for e in report.errors}
    assert sorted(errors) == [3, 4, 5]
    assert "unknown emotion 'ecstatic'" in errors[3] and "anger, disgust, fear, happiness, sadness, surprise" in errors[3]
    assert "unknown emotion(s) 'awe'" in errors[4]
    assert "names happiness, which another key names too" in errors[5]
    images = {i.original_name: i for i in Image.objects.filter(dataset__slug="eemo")}
    assert images["a.png"].label == "happiness" and images["b.png"].label == "happiness" and images["f.png"].label == "fear"
    stored = images["b.png"].annotations.get().ces_distribution
    assert stored == {"anger": 0.05, "disgust": 0.05, "fear": 0.1, "happiness": 0.6, "sadness": 0.1, "surprise": 0.1}


def test_a_mikels_import_is_unchanged_and_refuses_ekman_words(tmp_path):
    ws = Workspace(tmp_path)
    ws.add_png("a.png", seed=1)
    ws.add_png("b.png", seed=2)
    happy = ws.line("b.png")
    happy["ces"] = {"label": "happiness"}
    report = ws.run([ws.line("a.png", label="awe"), happy], dataset="plain")
    assert Dataset.objects.get(slug="plain").get_taxonomy() == MIKELS
    assert report.imported == 1 and [e.line for e in report.errors] == [2]
    assert "unknown emotion 'happiness'" in report.errors[0].reason


def test_an_import_into_an_existing_dataset_of_another_taxonomy_is_refused(tmp_path):
    DatasetFactory(slug="plain")
    ws = Workspace(tmp_path)
    ws.add_png("a.png", seed=1)
    with pytest.raises(ValueError, match="exists with the taxonomy 'mikels', not 'ekman'"):
        ws.run([ws.line("a.png")], dataset="plain", taxonomy="ekman")


def test_the_import_command_takes_a_taxonomy_name_or_file_and_prints_bad_lines(tmp_path, capsys):
    ws = Workspace(tmp_path)
    good = ekman_line(ws, "a.png", 1, "joy", ekman_distribution("happiness"))
    bad = ekman_line(ws, "b.png", 2, "bliss", ekman_distribution("happiness"))
    ws.write([good, bad])
    with pytest.raises(CommandError, match="1 line"):
        call_command("import_emoverse", str(ws.jsonl), images_dir=str(ws.images), dataset="cmd", taxonomy="ekman")
    err = capsys.readouterr().err
    assert "line 2: ces.label: unknown emotion 'bliss'" in err
    assert Image.objects.get(dataset__slug="cmd", original_name="a.png").label == "happiness"
    spec = tmp_path / "valence.json"
    spec.write_text(json.dumps(VALENCE))
    line = ws.line("a.png")
    line["ces"] = {"label": "good"}
    ws.write([line])
    call_command("import_emoverse", str(ws.jsonl), images_dir=str(ws.images), dataset="val", taxonomy=str(spec))
    assert Image.objects.get(dataset__slug="val").label == "positive"
    with pytest.raises(CommandError, match="neither a built-in taxonomy"):
        call_command("import_emoverse", str(ws.jsonl), images_dir=str(ws.images), dataset="x", taxonomy="plutchik")


def test_review_validation_takes_only_the_datasets_labels():
    """The review API is strict: synonyms are an import convenience, not an API alias."""
    image = ImageFactory(dataset=DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec()))
    payload = annotation_payload(W, H)
    payload["ces"] = {"label": "happiness"}
    assert check_annotation(payload, image, "approved").ces.label == "happiness"
    payload["ces"] = {"label": "joy"}
    with pytest.raises(InvalidAnnotation, match="unknown emotion 'joy'"):
        check_annotation(payload, image, "approved")


def test_the_dataset_pages_name_the_taxonomy_and_filter_by_its_labels(client, researcher):
    dataset = DatasetFactory(slug="eemo", name="EEmo", taxonomy=EKMAN.to_spec())
    ImageFactory(dataset=dataset, label="surprise", original_name="party.png")
    ImageFactory(dataset=dataset, label="fear", original_name="storm.png")
    assert ImageFilter.base_filters["label"].field is not None  # built from the class (as the API schema does): Mikels' choices
    client.force_login(researcher)
    listing = client.get(reverse("dataset-list")).content.decode()
    assert "eemo · Ekman" in listing
    page = client.get(reverse("dataset-detail", args=["eemo"]))
    html = page.content.decode()
    assert "Emotions (Ekman): anger, disgust, fear, happiness, sadness, surprise" in html
    assert '<option value="surprise"' in html and '<option value="awe"' not in html
    only = client.get(reverse("dataset-detail", args=["eemo"]), {"label": "surprise"}, HTTP_HX_REQUEST="true")
    assert "party.png" in only.content.decode() and "storm.png" not in only.content.decode()


def test_the_image_page_shows_the_distribution_over_the_datasets_six_labels(client, researcher):
    dataset = DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec())
    image = ImageFactory(dataset=dataset)
    payload = annotation_payload(image.width, image.height)
    payload["ces"] = {"label": "surprise", "confidence": 0.5,
                      "distribution": {e: (0.5 if e == "surprise" else 0.1) for e in EKMAN.labels}}
    make_annotation(image, payload=payload)
    client.force_login(researcher)
    page = client.get(reverse("image-detail", args=[image.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    positions = [html.find(f"<span>{label}</span>") for label in EKMAN.labels]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert "<span>amusement</span>" not in html
