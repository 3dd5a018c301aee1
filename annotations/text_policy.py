"""The text and number policy of ``core.text``, applied once at Django's boundaries.

- :class:`JSONParser`: every JSON body of the API (``DEFAULT_PARSER_CLASSES``);
- :class:`TextPolicyMiddleware`: the path and every query parameter of every request,
  and a :class:`~core.text.TextPolicyError` that a page raises (the API's go through
  ``annotations.api_errors``);
- ``annotations.converters.DatabaseIdConverter``: ``<id:pk>`` in URLs;
- :class:`CheckedDateTimeFilter`, :class:`CheckedDateTimeField`: datetimes of
  filter sets and serializers;
- :class:`CursorPagination`: the position inside a ``cursor`` parameter;
- :class:`CheckedModelSerializer`, :class:`CheckedModelForm`: invisible-only text
  counts as blank in API writes and admin forms.

A refusal is a 400: ``{"detail", "field"}`` on the API, a plain-text page elsewhere.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django_filters import IsoDateTimeFilter
from django_filters.fields import IsoDateTimeField
from rest_framework import pagination, parsers, serializers
from rest_framework.exceptions import NotFound, ParseError

from core.text import TextPolicyError, check_datetime, check_text, is_blank, load_json, text_problem

API_PREFIX = "/api/"


class JSONParser(parsers.JSONParser):
    """JSON bodies read by :func:`core.text.load_json`, the importer's reader of a line:
    ``NaN``, ``Infinity`` and ``1e400`` are refused with their path, like NUL and
    unpaired surrogates anywhere in the body (a 400 ``{"detail", "field"}``)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return load_json(stream.read().decode(encoding))
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply") from exc
        except ValueError as exc:  # malformed JSON, or bytes that are not in the declared encoding
            raise ParseError(f"JSON parse error - {exc}") from exc


def refusal(request: HttpRequest, exc: TextPolicyError) -> HttpResponse:
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": str(exc), "field": exc.field}, status=400)
    return HttpResponseBadRequest(f"Bad request: {exc}", content_type="text/plain; charset=utf-8")


def check_query(request: HttpRequest) -> None:
    """Raise :class:`TextPolicyError` for a path or a query parameter (name or value) that
    holds a NUL. (Django decodes the query as UTF-8 with replacement, so no surrogate gets in.)"""
    problem = text_problem(request.path_info)
    if problem:
        raise TextPolicyError("path", problem)
    for key, values in request.GET.lists():
        problem = text_problem(key)
        if problem:
            raise TextPolicyError(ascii(key)[1:-1], f"the parameter's name: {problem}")
        for value in values:
            check_text(value, field=key)


class TextPolicyMiddleware:
    """Answers 400 before any view runs for a path or query parameter that breaks the
    policy, and turns a :class:`TextPolicyError` raised by a page into a 400."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            check_query(request)
        except TextPolicyError as exc:
            return refusal(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return refusal(request, exception) if isinstance(exception, TextPolicyError) else None


class CheckedIsoDateTimeField(IsoDateTimeField):
    """django-filter's ISO 8601 field, then :func:`core.text.check_datetime` (UTC, in range)."""

    def __init__(self, *args, param: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.param = param

    def clean(self, value):
        value = super().clean(value)
        return None if value is None else check_datetime(value, field=self.param)


class CheckedDateTimeFilter(IsoDateTimeFilter):
    """An ISO 8601 datetime filter; ``param`` is its query parameter, named in a refusal."""

    field_class = CheckedIsoDateTimeField


class CheckedDateTimeField(serializers.DateTimeField):
    """DRF's DateTimeField, through :func:`core.text.check_datetime` before DRF moves it to UTC."""

    def enforce_timezone(self, value):
        return super().enforce_timezone(check_datetime(value, field=self.field_name))


class CheckedCharField(serializers.CharField):
    """A CharField for which text of only invisible characters (``"\\u200b"``) is blank."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value and not self.allow_blank and is_blank(value):
            self.fail("blank")
        return value


class CheckedModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: CheckedCharField,
        models.TextField: CheckedCharField,
    }


class CheckedModelForm(forms.ModelForm):
    """A model form (the admin's) in which a required text field that shows nothing is missing."""

    def clean(self):
        cleaned = super().clean()
        for name, field in self.fields.items():
            value = cleaned.get(name)
            if field.required and isinstance(value, str) and value and is_blank(value):
                self.add_error(name, field.error_messages["required"])
        return cleaned


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pagination, with the position inside a cursor checked against the
    ordering's first field: a tampered cursor (``p=abc``, a NUL) is an invalid cursor
    (404, as DRF answers one it cannot decode), never a failed query."""

    def paginate_queryset(self, queryset, request, view=None):
        cursor = self.decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            name = self.get_ordering(request, queryset, view)[0].lstrip("-")
            if not _fits(queryset.model, name, cursor.position):
                raise NotFound(self.invalid_cursor_message)
        return super().paginate_queryset(queryset, request, view)


def _fits(model: type[models.Model], name: str, position: str) -> bool:
    """Whether ``position`` is storable text that ``model``'s field ``name`` reads."""
    if text_problem(position):
        return False
    try:
        model._meta.get_field(name).to_python(position)
    except FieldDoesNotExist:  # an ordering through a relation: the database compares it
        return True
    except ValidationError:
        return False
    return True
