"""Schemathesis over ``/api/schema/`` as each role, on PostgreSQL.

Per operation and role: the inputs that answered 500 before (issue 13: NUL, lone
surrogates, out-of-range datetimes and ids; ``RealValues.hostile``), a fixed sample of
Schemathesis' coverage phase (boundary values, missing and wrongly typed fields) and
``MAX_EXAMPLES`` Hypothesis cases (positive and negative data, and requests that name the
world's real objects). Every answer must be no server error (5xx) and what the schema
says: a documented status code, its content type, a body valid against its schema. The
test sends every case and then lists each failure (operation, role, check, the request as
curl, the server's exception), so one run shows them all. Documented exceptions only
(``NOT_FUZZED``, ``EXCEPTIONS``), each with its reason.

Deterministic: Hypothesis derandomised, ``SEED`` for Schemathesis' and the sample's
choices, no example database, no deadline, no shrinking; sequences are reset, so the
world's ids are the same in every run: the same code sends the same cases. The budget is
in cases, not time (about two minutes for the four roles on two cores); the run ends
with the number of cases sent (tests/conftest.py prints it).

Schemathesis' pytest plugin (``schemathesis.pytest.from_fixture``) does not run under
pytest 9.2 (it sets ``Node._nodeid``, which pytest 9.2 no longer has), so this test
drives its Python API itself: ``APIOperation.as_strategy``, ``schema.iter_coverage_cases``,
``Case.call`` and ``Case.validate_response``.
"""

from __future__ import annotations

import itertools
import random
import sys
import traceback
from dataclasses import dataclass

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from annotations.roles import HasRole
from core.vocabulary import USER_ROLES
from tests.api.world import World

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True, reset_sequences=True)]

SEED = 20260613
MAX_EXAMPLES = 25  # generated cases per operation and role
COVERAGE_SAMPLE = 20  # coverage-phase cases per operation and role
REFUSED_EXAMPLES = 3  # generated cases where the role itself is refused (403)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CONFIG = {
    "seed": SEED,
    "generation": {
        "deterministic": True,
        "database": "none",
        # The caller's token is sent by the test; generated Authorization headers or
        # session cookies would only test that a bad credential is refused.
        "with-security-parameters": False,
    },
    # Values taken from the application's code: which modules that reaches depends on what
    # else the process imported. The cases must depend on the schema, the seed and the world only.
    "analysis": {"constants": {"enabled": False}},
}
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
)
# Operations not fuzzed, and why.
NOT_FUZZED = {
    ("DELETE", "/api/auth/token/"): "revokes the caller's own token: every later case would be a 401 "
                                    "(token revocation has its own tests).",
}
# Documented exceptions: (method, path, status) -> why that answer is not a server error.
EXCEPTIONS: dict[tuple[str, str, int], str] = {
    ("POST", "/api/review/refine/", 503): "No segmenter is configured here (EMOVERSE_ML_CONFIG), so refine gives its documented "
                                          "503 'not available' answer; the refine dispatch is tested in tests/review and tests/ml.",
}


NUL, LONE_SURROGATE = "nul\x00", "\ud83d"  # no database stores either; JSON can carry both, a URL only NUL
OUT_OF_RANGE = {"date-time": "0040-01-10T19:48:31-20:11", "integer": "99999999999999999999"}
POISONED_LEAVES = 8  # text values of a real body replaced, one at a time


def text_leaves(value, path=()):
    """Where ``value`` (JSON) holds text: paths of its string leaves, depth first."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from text_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from text_leaves(item, (*path, index))


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


class RealValues:
    """Requests that name the world's objects, so an operation meets real datasets, images,
    leases and snapshots and not only 404s: fixed path parameters, query values and bodies
    for ``APIOperation.as_strategy`` (what is not fixed is still generated)."""

    def __init__(self, world: World):
        self.world = world

    def path_values(self, path: str, name: str) -> list:
        world = self.world
        by_name = {"slug": world.datasets, "image_id": world.images, "path": world.export_files}
        if name in by_name:
            return by_name[name]
        for prefix, values in (("/api/review/leases/", world.leases), ("/api/exports/", world.exports),
                               ("/api/images/", world.images), ("/api/annotations/", world.annotations)):
            if name == "id" and path.startswith(prefix):
                return values
        return []

    def query_values(self, name: str) -> list:
        world = self.world
        return {"dataset": world.datasets, "image": world.images, "reviewer": world.usernames, "model": world.models,
                "author": world.models + world.usernames}.get(name, [])

    def bodies(self, method: str, path: str) -> list:
        world = self.world
        return {
            ("POST", "/api/review/next/"): [{"dataset": slug} for slug in world.datasets],
            ("POST", "/api/review/leases/{id}/submit/"): [world.submit_body],
            ("POST", "/api/review/adjudication/{image_id}/"): [world.adjudication_body],
            ("PUT", "/api/review/leases/{id}/draft/"): [{"payload": {"note": "more", "boxes": [[1, 2, 3, 4]]}}],
            ("POST", "/api/review/refine/"): [{"image_id": image, "points": [[5, 5]], "labels": [1]} for image in world.images],
            ("POST", "/api/exports/"): [{"dataset": slug, "format": fmt} for slug in world.datasets
                                        for fmt in ("emoverse-jsonl", "coco", "parquet")],
            ("POST", "/api/agreement/calibration/recalibrate/"): [{"dataset": slug} for slug in world.datasets],
        }.get((method, path), [])

    def fixed(self, operation) -> list[dict]:
        """Keyword arguments for ``as_strategy``: every combination of real values it can take."""
        method, path = operation.method.upper(), operation.path
        path_names = [p.name for p in operation.path_parameters]
        path_options = [[(name, value) for value in self.path_values(path, name)] for name in path_names]
        paths = [dict(combo) for combo in itertools.product(*path_options)] if all(path_options) else []
        queries = [{name: value} for p in operation.query for name in [p.name] for value in self.query_values(name)]
        bodies = self.bodies(method, path)
        combos = []
        for path_parameters in paths or [None]:
            for extra in [{"query": q} for q in queries] + [{"body": b, "media_type": "application/json"} for b in bodies] or [{}]:
                kwargs = {**({"path_parameters": path_parameters} if path_parameters else {}), **extra}
                if kwargs:
                    combos.append(kwargs)
        return combos

    def hostile(self, operation) -> list:
        """The inputs that answered 500 before (issue 13), sent once each: NUL in a query value,
        a NUL or a lone surrogate in the text of a real body, an out-of-range datetime or id."""
        fixed = self.fixed(operation)
        path = {p.name: 1 for p in operation.path_parameters}
        path |= next((kwargs["path_parameters"] for kwargs in fixed if "path_parameters" in kwargs), {})
        cases = []
        for parameter in operation.query:
            schema = parameter.definition.get("schema", {})
            value = OUT_OF_RANGE.get(schema.get("format")) or OUT_OF_RANGE.get(schema.get("type")) or NUL
            cases.append(operation.Case(path_parameters=path, query={parameter.name: value}))
        for parameter in operation.path_parameters:
            if parameter.definition.get("schema", {}).get("type") == "integer":
                cases.append(operation.Case(path_parameters={**path, parameter.name: int(OUT_OF_RANGE["integer"])}))
        for body in self.bodies(operation.method.upper(), operation.path)[:1]:
            for leaf in itertools.islice(text_leaves(body), POISONED_LEAVES):
                for text in (NUL, LONE_SURROGATE):
                    cases.append(operation.Case(path_parameters=path, body=replaced(body, leaf, text),
                                                media_type="application/json"))
        return cases


@dataclass(frozen=True)
class Found:
    label: str
    role: str
    title: str
    request: str
    server_error: str

    def __str__(self) -> str:
        text = f"{self.label} as {self.role}: {self.title}\n    {self.request}"
        return text + (f"\n    {self.server_error}" if self.server_error else "")


def case_strategy(operation, real: RealValues) -> st.SearchStrategy:
    strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    fixed = real.fixed(operation)
    if fixed:
        strategies.append(st.sampled_from(fixed).flatmap(lambda kwargs: operation.as_strategy(GenerationMode.POSITIVE, **kwargs)))
    return st.one_of(strategies)


class Fuzzer:
    """Sends one role's cases and keeps the first example of each (operation, check, status) failure."""

    def __init__(self, schema, *, role: str, world: World, counter):
        self.schema, self.role, self.headers, self.counter = schema, role, world.headers(role), counter
        self.real = RealValues(world)
        self.found: dict[tuple[str, str, str], Found] = {}
        self.last_error = ""
        self.random = random.Random(f"{SEED}-{role}")

    def remember(self, sender, request, **kwargs) -> None:  # the exception behind a 500, for the report
        self.last_error = "".join(traceback.format_exception_only(*sys.exc_info()[:2])).strip()

    def send(self, case) -> None:
        operation = case.operation
        self.counter[f"{operation.label} as {self.role}"] += 1
        self.last_error = ""
        response = case.call(headers=self.headers)
        excepted = (operation.method.upper(), operation.path, response.status_code) in EXCEPTIONS
        try:
            case.validate_response(response, checks=[c for c in CHECKS if not (excepted and c is not_a_server_error)],
                                   headers=self.headers)
        except FailureGroup as group:
            failures = group.exceptions
            if any(isinstance(f, ServerError) for f in failures):  # a 500 is also an undocumented status: say it once
                failures = [f for f in failures if isinstance(f, ServerError)]
            for failure in failures:
                key = (operation.label, self.role, f"{failure.title} ({response.status_code})")
                if key not in self.found:
                    self.found[key] = Found(*key, case.as_curl_command(headers=self.headers), self.last_error)

    def role_may_not(self, operation) -> bool:
        """True when the role itself is refused (``HasRole``): then a few cases show that every
        request gets the same documented 403, and the time goes to the operations the role can use."""
        fixed = next((kwargs for kwargs in self.real.fixed(operation) if "path_parameters" in kwargs), {})
        path_parameters = {p.name: 1 for p in operation.path_parameters} | fixed.get("path_parameters", {})
        response = operation.Case(path_parameters=path_parameters).call(headers=self.headers)
        return response.status_code == 403 and response.json().get("detail") == HasRole.message

    def coverage_cases(self, operation) -> list:
        """A fixed sample of Schemathesis' coverage phase: boundary values, missing and wrongly typed fields."""
        cases = [case for case in self.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode),
            generation_config=self.schema.config.generation_for(operation=operation),
        ) if case.method.upper() == operation.method.upper()]
        return self.random.sample(cases, min(COVERAGE_SAMPLE, len(cases)))

    def fuzz(self, operation) -> None:
        refused = self.role_may_not(operation)
        for case in [] if refused else self.real.hostile(operation) + self.coverage_cases(operation):
            self.send(case)

        @settings(HYPOTHESIS, max_examples=REFUSED_EXAMPLES if refused else MAX_EXAMPLES)
        @given(case=case_strategy(operation, self.real))
        def run(case):
            self.send(case)

        run()


def in_run_order(operations: list) -> list:
    """Operations that end the world's objects (release or skip the live lease, rename a dataset) come last."""
    return sorted(operations, key=lambda op: op.path.endswith(("/release/", "/skip/")) or op.path == "/api/datasets/{slug}/")


@pytest.fixture(autouse=True)
def _no_local_constants(monkeypatch):
    """Hypothesis also draws constants from the project's modules loaded in the process, and
    which ones are loaded depends on what else ran (the whole suite, ``-m fuzz``, an xdist
    worker's share). The fuzzer draws from Hypothesis' own constants only, so the same
    cases are sent however it is run (a private hook of the pinned Hypothesis version)."""
    monkeypatch.setattr(providers, "_get_local_constants", Constants)
    providers.CONSTANTS_CACHE.cache.clear()
    yield
    providers.CONSTANTS_CACHE.cache.clear()


@pytest.mark.parametrize("role", USER_ROLES)
def test_no_server_error_and_no_schema_violation(role, world, on_postgres, fuzz_cases):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler(),
                                            config=schemathesis.Config.from_dict(CONFIG), headers=world.headers(role))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, "the schema lost operations"
    operations = [op for op in operations if (op.method.upper(), op.path) not in NOT_FUZZED]
    fuzzer = Fuzzer(schema, role=role, world=world, counter=fuzz_cases)
    got_request_exception.connect(fuzzer.remember)
    try:
        for operation in in_run_order(operations):
            fuzzer.fuzz(operation)
    finally:
        got_request_exception.disconnect(fuzzer.remember)
    found = fuzzer.found
    assert not found, f"{len(found)} failure(s) in {sum(fuzz_cases.values())} cases:\n" + "\n".join(map(str, found.values()))
