"""OpenAPI components of the JSON the APIs build as plain dicts: an annotation's content,
its triplets and elements, the CES, the critic's verdicts.

The selectors build that JSON (``annotations.selectors.annotation_to_dict``,
``review.selectors.annotation_payload``); these serializers only describe it. An API
field that passes such a value through unchanged is one of the ``*JSON`` fields below:
a ``JSONField`` whose schema is the component, so the schema says what the server
sends and the server sends what the selectors return. The ``*Input`` serializers describe
what a client sends (``annotations.validation`` checks it).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from annotations.models import AnnotationKind, ElementStatus
from annotations.validation import MAX_PHRASE_LENGTH, MAX_TRIPLETS
from core.vocabulary import EMOTIONS, ROLES

VERDICTS = ("ok", "doubtful", "wrong")
EMOTION_HELP = f"One of the labels of the dataset's emotion taxonomy (docs/taxonomies.md); Mikels' by default: {', '.join(EMOTIONS)}."


class MaskSerializer(serializers.Serializer):
    """A COCO RLE mask: ``size`` is ``[height, width]``, ``counts`` pycocotools' compressed string."""

    size = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=2, max_length=2)
    counts = serializers.CharField()


class BoxField(serializers.ListField):
    """``[x0, y0, x1, y1]``: absolute pixels, XYXY, in the stored image."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.FloatField(), min_length=4, max_length=4, **kwargs)


class ElementSerializer(serializers.Serializer):
    """One Background, Attribute or Subject. Absent keys are absent; ``status`` is omitted when pending."""

    phrase = serializers.CharField()
    box = BoxField(required=False)
    box_score = serializers.FloatField(required=False)
    mask = MaskSerializer(required=False)
    mask_score = serializers.FloatField(required=False)
    status = serializers.ChoiceField([s for s in ElementStatus.values if s != ElementStatus.PENDING], required=False)


class TripletSerializer(serializers.Serializer):
    """A B-A-S triplet: ``key`` identifies it across versions; each role is optional (at least one)."""

    key = serializers.UUIDField()
    background = ElementSerializer(required=False)
    attribute = ElementSerializer(required=False)
    subject = ElementSerializer(required=False)


class DistributionField(serializers.DictField):
    """Probability per emotion of the dataset's taxonomy (Mikels' 8 by default), summing to 1."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.FloatField(min_value=0, max_value=1), **kwargs)


@extend_schema_serializer(component_name="CES")
class CesSerializer(serializers.Serializer):
    """The categorical emotion state: a label, its confidence and the full distribution."""

    label = serializers.CharField(help_text=EMOTION_HELP)
    confidence = serializers.FloatField(allow_null=True, min_value=0, max_value=1)
    distribution = DistributionField(allow_null=True)


class AnnotatorSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(AnnotationKind.values)
    name = serializers.CharField()
    prompt_version = serializers.CharField(required=False)


class AnnotationContentSerializer(serializers.Serializer):
    """The annotation part of an EmoVerse JSONL line (docs/emoverse-jsonl.md)."""

    triplets = TripletSerializer(many=True)
    ces = CesSerializer(required=False)
    des = serializers.ListField(child=serializers.FloatField(), required=False, help_text="1024 numbers (DES)")
    rationale = serializers.CharField(allow_blank=True)
    annotator = AnnotatorSerializer()


class CriticVerdictSerializer(serializers.Serializer):
    triplet_index = serializers.IntegerField(min_value=0)
    role = serializers.ChoiceField(ROLES)
    verdict = serializers.ChoiceField(VERDICTS)
    reasoning = serializers.CharField(allow_blank=True, allow_null=True, required=False)


class CriticSerializer(serializers.Serializer):
    """The critic agent's verdicts as stored with the annotation (extra keys are kept)."""

    elements = CriticVerdictSerializer(many=True, required=False)
    label_verdict = serializers.ChoiceField(VERDICTS, allow_null=True, required=False)
    label_reasoning = serializers.CharField(allow_blank=True, allow_null=True, required=False)
    reasoning = serializers.CharField(allow_blank=True, allow_null=True, required=False)
    suggested_label = serializers.CharField(allow_null=True, required=False, help_text=EMOTION_HELP)
    model = serializers.CharField(required=False)
    prompt_version = serializers.CharField(allow_blank=True, required=False)


# --- what a client sends ------------------------------------------------------------------


class ElementInputSerializer(serializers.Serializer):
    phrase = serializers.CharField(max_length=MAX_PHRASE_LENGTH)
    box = BoxField(required=False, allow_null=True)
    mask = MaskSerializer(required=False, allow_null=True)
    status = serializers.ChoiceField(ElementStatus.values, required=False)


class TripletInputSerializer(serializers.Serializer):
    key = serializers.UUIDField(required=False, help_text="Omit for a new triplet.")
    background = ElementInputSerializer(required=False)
    attribute = ElementInputSerializer(required=False)
    subject = ElementInputSerializer(required=False)


class CesInputSerializer(serializers.Serializer):
    label = serializers.CharField(help_text=EMOTION_HELP)
    confidence = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    distribution = DistributionField(required=False, allow_null=True)


class AnnotationInputSerializer(serializers.Serializer):
    """A reviewer's or adjudicator's whole answer; ``ces`` is required to approve."""

    triplets = TripletInputSerializer(many=True, max_length=MAX_TRIPLETS)
    ces = CesInputSerializer(required=False, allow_null=True)
    rationale = serializers.CharField(required=False, allow_blank=True)


# --- pass-through fields: the value as the selectors built it, described by a component ----


@extend_schema_field(TripletSerializer(many=True))
class TripletsJSON(serializers.JSONField):
    pass


@extend_schema_field(CesSerializer(allow_null=True))
class CesJSON(serializers.JSONField):
    pass


@extend_schema_field(CriticSerializer(allow_null=True))
class CriticJSON(serializers.JSONField):
    pass


@extend_schema_field(AnnotationContentSerializer)
class AnnotationContentJSON(serializers.JSONField):
    pass


@extend_schema_field(AnnotationInputSerializer)
class AnnotationInputJSON(serializers.JSONField):
    pass
