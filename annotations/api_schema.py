"""The OpenAPI schema class of every API (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``).

drf-spectacular documents the answers an operation declares; this class adds the error
answers every operation can give, in the one shape of ``annotations.api_errors``, so a
generated client knows them all:

* 400 ``Error`` (``field`` names the value) where the operation takes parameters or a body;
* 401 ``Error`` everywhere (DRF authenticates every request): no credentials where a user
  is needed, or a wrong or expired token (with the token authentication first; else DRF
  answers 403);
* 403 ``Error`` everywhere: not signed in, or a role or object that does not allow this;
* 404 ``Error`` where the path names an object, or a cursor names a page;
* 413 ``Error`` where the operation takes a body (the body is too large);
* 429 ``Error`` everywhere (throttled; ``Retry-After`` says when to try again).

An operation declares the others itself (e.g. 404 for an unknown dataset in the body,
409 ``Conflict``, the refine API's 502/503/504).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every error answer. ``field`` is on every 400: the path of the offending value
    (``annotation.triplets[0].subject.box``, ``element_decisions[2].action``), or null when
    the request as a whole is bad."""

    detail = serializers.CharField()
    field = serializers.CharField(allow_null=True, required=False)

    class Meta:
        ref_name = "Error"


class ConflictSerializer(serializers.Serializer):
    """409: what changed since the client read it (see docs/review-api.md)."""

    detail = serializers.CharField()
    changes = serializers.DictField()

    class Meta:
        ref_name = "Conflict"


BAD_REQUEST = OpenApiResponse(ErrorSerializer, description="A parameter or body value is not valid; `field` names it.")
UNAUTHENTICATED = OpenApiResponse(ErrorSerializer, description="No credentials, or a wrong or expired token.")
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="Not signed in, or the role or object does not allow this.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object.")
CONFLICT = OpenApiResponse(ConflictSerializer, description="The object changed or is no longer the caller's; see `changes`.")
TOO_LARGE = OpenApiResponse(ErrorSerializer, description="The request body is too large.")
THROTTLED = OpenApiResponse(ErrorSerializer, description="Too many requests; retry after `Retry-After` seconds.")


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        errors = {"401": UNAUTHENTICATED, "403": FORBIDDEN, "429": THROTTLED}
        if parameters or has_body:
            errors["400"] = BAD_REQUEST
        if any(p["in"] == "path" for p in parameters) or self._get_pagination_parameters():
            errors["404"] = NOT_FOUND  # the object, or the page: a cursor that is not one of ours
        if has_body:
            errors["413"] = TOO_LARGE
        responses = operation["responses"]
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code)
        operation["responses"] = dict(sorted(responses.items()))
        return operation
