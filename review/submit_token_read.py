"""A submit's lease read sent with the token's statement, in one round trip (PostgreSQL).

:func:`attach_lease_read` runs before the submit's authentication (``SubmitAPI.initial``): it
sets :func:`lease_read_with_token`'s read on the request, which ``annotations.tokens`` sends with
the token's statement and :func:`review.submit_postgres.lease_read` takes once the request is
allowed, for the same lease and phrases only.
"""

from __future__ import annotations

import orjson
from django.db import connection
from django.http import HttpRequest

from annotations.phrase_embeddings import phrase_model_name
from annotations.prepared import array_literal
from annotations.tokens import READ_WITH_TOKEN, ReadWithToken
from core.text import INT64_MAX
from review.submit_postgres import READ_SQL, phrase_hashes, submitted_phrases

# A submit body larger than this is not peeked at before the authentication (a submit with
# its masks is a few kB to a few tens of kB).
READ_WITH_TOKEN_MAX_BODY = 256 * 1024


def attach_lease_read(request: HttpRequest, pk: int) -> None:
    """Before a submit's authentication: set :func:`lease_read_with_token`'s read on ``request``
    (``annotations.tokens.READ_WITH_TOKEN``) for the token authentication to send with its own
    statement, on PostgreSQL, for a request that names a token and has a JSON body of at most
    :data:`READ_WITH_TOKEN_MAX_BODY`. Anything else is read as before, after the authentication
    (a session's CSRF check included); nothing of the read is used unless the request is allowed."""
    if connection.vendor != "postgresql" or request.content_type != "application/json":
        return
    if not request.META.get("HTTP_AUTHORIZATION", "").startswith("Token "):
        return
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if 0 < length <= READ_WITH_TOKEN_MAX_BODY:
        setattr(request, READ_WITH_TOKEN, lease_read_with_token(pk, request.body))


def lease_read_with_token(pk: int, body: bytes) -> ReadWithToken | None:
    """:func:`lease_read`'s query for lease ``pk`` and the phrases of the submit's body as sent
    (``submitted_phrases``; DRF has not parsed the body yet), for the token authentication to send
    with its own statement: one round trip fewer (``annotations.tokens.ReadWithToken``). None for
    a body that is not a JSON object or a ``pk`` no lease can have: the view reads the lease itself
    then, and answers as it always did."""
    if not 0 < pk <= INT64_MAX:  # as <id:pk> guarantees; a read that cannot fail is what the token's may carry
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    phrases = submitted_phrases(data.get("annotation"), data.get("element_decisions"))
    return ReadWithToken(READ_SQL, [pk, phrase_model_name(), array_literal(sorted(phrase_hashes(phrases)))])
