"""An API's input serializer applied to a plain JSON body without building the serializer.

DRF copies every declared field of a serializer (``copy.deepcopy``) each time one is built;
for the review hot path (``review.apis.NextAPI``, ``SubmitAPI``) that copy costs more than
the checks. :func:`validated_input` first tries :func:`plain_validated`, which handles only
the plain case of each field (an ``int`` for an ``IntegerField``, a ``str`` naming a choice,
non-blank text, a JSON value, a list of JSON values) and runs the field's own validators;
whenever a value is anything else (missing where required, ``None``, a string for a number,
blank text, a form body ...) it gives up and the serializer runs as ever, so a value is
accepted, converted and refused exactly as DRF does (tests/annotations/test_api_input.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson
from rest_framework import serializers
from rest_framework.fields import empty

from core.text import INT64_MAX, INT64_MIN

_GIVE_UP = object()  # "let the serializer decide"


def _run_validators(field: serializers.Field, value: Any) -> Any:
    for validator in field.validators:
        if getattr(validator, "requires_context", False):  # it needs the bound serializer
            return _GIVE_UP
        try:
            validator(value)
        except Exception:  # the serializer raises the error in its own words
            return _GIVE_UP
    return value


def _json_value(field: serializers.JSONField, value: Any) -> Any:
    # DRF checks that json.dumps takes the value; orjson takes less (64-bit integers, 254 levels),
    # and anything it refuses goes to the serializer.
    if value is None:
        return _GIVE_UP
    try:
        orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _GIVE_UP
    return _run_validators(field, value)


def _integer(field: serializers.IntegerField, value: Any) -> Any:
    if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
        return _GIVE_UP
    return _run_validators(field, value)


def _choice(field: serializers.ChoiceField, value: Any) -> Any:
    if type(value) is not str or value == "" or value not in field.choice_strings_to_values:
        return _GIVE_UP
    return _run_validators(field, field.choice_strings_to_values[value])


def _text(field: serializers.CharField, value: Any) -> Any:
    if type(value) is not str:
        return _GIVE_UP
    text = value.strip() if field.trim_whitespace else value
    if not text:  # blank: allowed or not, the serializer says
        return _GIVE_UP
    return _run_validators(field, text)


def _json_list(field: serializers.ListField, value: Any) -> Any:
    if type(value) is not list or (not value and not field.allow_empty):
        return _GIVE_UP
    child = field.child
    if any(item is None for item in value) or _json_value(child, value) is _GIVE_UP:
        return _GIVE_UP
    if child.validators:
        return _GIVE_UP
    return _run_validators(field, list(value))


def _checker(field: serializers.Field) -> Callable[[Any, Any], Any] | None:
    """How :func:`plain_validated` reads ``field``, or None when only the serializer can."""
    kind = type(field)
    if isinstance(field, serializers.JSONField) and not field.binary and field.encoder is None:
        return _json_value
    if kind is serializers.IntegerField:
        return _integer
    if kind is serializers.ChoiceField:
        return _choice
    if kind in (serializers.CharField, serializers.SlugField):
        return _text
    if (isinstance(field, serializers.ListField) and type(field).to_internal_value is serializers.ListField.to_internal_value
            and isinstance(field.child, serializers.JSONField) and _checker(field.child) is _json_value):
        return _json_list
    return None


@functools.cache
def _plan(serializer_class: type[serializers.Serializer]) -> tuple | None:
    """Per writable field: name, field (as declared, never bound), checker; None when the class
    has anything the fast path does not run (a ``validate*`` method, class validators, a field
    of another kind or with another source)."""
    if any(getattr(serializer_class, name) is not getattr(serializers.Serializer, name, None)
           for name in dir(serializer_class) if name.startswith(("validate", "run_", "to_internal_value"))):
        return None
    if getattr(getattr(serializer_class, "Meta", None), "validators", None):
        return None
    plan = []
    for name, field in serializer_class._declared_fields.items():
        if field.read_only:
            continue
        checker = _checker(field)
        if checker is None or field.source not in (None, name):
            return None
        plan.append((name, field, checker))
    return tuple(plan)


def plain_validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any] | None:
    """``serializer_class(data=data).validated_data`` when every value is plain (module
    docstring), else None. Extra keys are ignored, as the serializer does."""
    plan = _plan(serializer_class)
    if plan is None or type(data) is not dict:
        return None
    out = {}
    for name, field, checker in plan:
        value = data.get(name, empty)
        if value is empty:
            if field.required or field.default is empty or getattr(field.default, "requires_context", False):
                return None
            value = field.default() if callable(field.default) else field.default
        else:
            value = checker(field, value)
            if value is _GIVE_UP:
                return None
        out[name] = value
    return out


def validated_input(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The serializer's validated data; raises its ``ValidationError`` for a bad value."""
    found = plain_validated(serializer_class, data)
    if found is not None:
        return found
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
