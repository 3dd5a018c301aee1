"""Prepared statements for the few statements every review request sends (PostgreSQL).

Django's cursors bind parameters on the client: each statement reaches the server as new text,
which it parses, analyses and plans again, and psycopg quotes every parameter into that text in
Python first. The token's statement, the submit's read, ``review_next`` and ``review_submit`` run
in every request of the review API; :func:`prepared_cursor` gives them a cursor that binds on the
server and prepares each statement on its first use on a connection (psycopg's prepared
statements, one per statement text and parameter types), so later requests send only the
statement's name and its parameters.

The cursor is Django's cursor wrapper (its error wrapping, the execute wrappers, query logging
and ``CaptureQueriesContext`` see these statements as any other) around Django's server-binding
psycopg cursor.

Off, and the statements go through ``connection.cursor()`` as before, on SQLite and where the
connection's ``prepare_threshold`` is None: behind PgBouncer in transaction pooling
(``DB_POOL_MODE=transaction``, ``emoverse_site.settings``), where a statement prepared on one
server connection may be missing on the next. A statement the session lost, or whose function
returns other columns after a migration, is sent again unprepared, and that connection prepares
nothing more (:func:`unprepared_after`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper

_STATE = "_emoverse_prepared"  # on the connection wrapper: (psycopg connection, its time zone needs registering)


def prepared_cursor() -> CursorWrapper | None:
    """A cursor whose statements are prepared on first use on this connection (module
    docstring), or None where statements are not prepared (then use ``connection.cursor()``).
    Opens the connection as ``connection.cursor()`` would, health check included."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return None
    db.close_if_health_check_failed()
    db.ensure_connection()
    raw = db.connection
    if raw.prepare_threshold is None:
        return None
    state = db.__dict__.get(_STATE)
    if state is None or state[0] is not raw:
        state = db.__dict__[_STATE] = (raw, _timezone_differs(db))
    with db.wrap_database_errors:
        cursor = _cursor_class()(raw)
        if state[1]:  # as Django's create_cursor: timestamps read in the connection's time zone
            from django.db.backends.postgresql.base import register_tzloader

            register_tzloader(db.timezone, cursor)
    db.validate_thread_sharing()
    return _logged_cursor_class()(cursor, db) if db.queries_logged else db.make_cursor(cursor)


@functools.cache
def pipeline_supported() -> bool:
    """Whether psycopg's libpq has pipeline mode (libpq 14 and later; the binary package's has)."""
    import psycopg

    return psycopg.Pipeline.is_supported()


@contextmanager
def pipeline() -> Iterator[None]:
    """The connection's psycopg pipeline (:func:`pipeline_supported`): the statements executed
    inside are sent together and their results read at its end, in one round trip. Database errors,
    those of its start and of its end included, come out as Django's."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.wrap_database_errors, db.connection.pipeline():
        yield


_CURSOR: list[type] = []
_LOGGED: list[type] = []


def _logged_cursor_class() -> type:
    """Django's cursor wrapper where queries are logged (``DEBUG``, ``CaptureQueriesContext``),
    logging each statement's text as written (``%s`` for its parameters): Django's text of the
    last executed query comes from client-side binding, which these statements skip."""
    if not _LOGGED:
        from django.db.backends.postgresql.base import CursorDebugWrapper

        class LoggedCursor(CursorDebugWrapper):
            def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
                return super().debug_sql(sql, params, use_last_executed_query=False, many=many)

        _LOGGED.append(LoggedCursor)
    return _LOGGED[0]


def _cursor_class() -> type:
    """Django's server-binding psycopg cursor, every execute asking for a prepared statement
    (psycopg's ``prepare=True``: prepared on first use, not after ``prepare_threshold`` runs)."""
    if not _CURSOR:
        import psycopg
        from django.db.backends.postgresql.base import ServerBindingCursor

        class PreparingCursor(ServerBindingCursor):
            def execute(self, query, params=None, *, prepare=None, binary=None):
                try:
                    return super().execute(query, params, prepare=True, binary=binary)
                except psycopg.Error as error:
                    if not _stop_preparing(self.connection, error):
                        raise
                return super().execute(query, params, prepare=False, binary=binary)

        _CURSOR.append(PreparingCursor)
    return _CURSOR[0]


def _timezone_differs(db) -> bool:
    from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, Format

    return db.timezone != db.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT).timezone


def unprepared_after(error: BaseException) -> bool:
    """Whether ``error`` (Django's, or psycopg's) says that a statement this connection prepared
    is gone or stale (:func:`_stop_preparing`), outside a transaction: then this connection
    prepares nothing more and the caller sends its statements again, unprepared."""
    raw = connections[DEFAULT_DB_ALIAS].connection
    return raw is not None and _stop_preparing(raw, error)


def _stop_preparing(raw, error: BaseException) -> bool:
    """A statement this connection prepared is gone (``26000``: a pooler in transaction mode handed
    the session another server connection, or a ``DISCARD ALL``) or no longer fits what its
    function returns (``0A000``, "cached plan must not change result type": a migration ran
    meanwhile; told by its code alone, as the server may word its messages in another language).
    Outside a transaction nothing else was lost with it (the failed statement wrote nothing, and
    should a ``0A000`` come from inside a function, sending it again meets the same error): the
    connection stops preparing (until it is replaced, after ``CONN_MAX_AGE``) and True says to run
    the statement again unprepared. Inside one, or for any other error, False: the error stands."""
    from psycopg.pq import PipelineStatus, TransactionStatus

    cause = error.__cause__ if not hasattr(error, "sqlstate") else error
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate not in ("26000", "0A000"):
        return False
    if raw.info.transaction_status != TransactionStatus.IDLE or raw.pgconn.pipeline_status != PipelineStatus.OFF:
        return False
    raw.prepare_threshold = None
    return True


def array_literal(values: Iterable[int | str]) -> str:
    """PostgreSQL's text of a one-dimensional array of ``values`` (integers or strings), for a
    parameter the statement casts to ``bigint[]`` or ``text[]``: psycopg dumps a list through its
    Python array dumper (about 30 µs a list), a string in C; binding on the client, the text is
    quoted as any string and the cast reads it."""
    return "{" + ",".join(str(v) if isinstance(v, int) else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"
