"""Fuzzing every operation of the OpenAPI document with schemathesis, as every role.

Each operation gets WANGGE_FUZZ_EXAMPLES generated requests (valid and invalid ones, each sent as
a role drawn at random or anonymously) against the app on a copy of the demo database. Every
answer must be below 500 and conform to the document: its status code is documented, and so are
its content type and body schema. `make test` runs a short, derandomised pass; `make fuzz` a long,
random one. The number of operations and cases is printed at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, assume, given, reject, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, create_engine, text

from api.app import create_app
from api.auth import Role, create_token
from api.settings import Settings
from tests.conftest import TEMPLATE, bearer, create_database, drop_database

EXAMPLES = int(os.environ.get("WANGGE_FUZZ_EXAMPLES", "25"))
LONG_RUN = "WANGGE_FUZZ_EXAMPLES" in os.environ  # make fuzz: random; make test: repeatable
CALLERS = [*(role.value for role in Role), "anonymous"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The document as served, read without a database (building it needs none).
DOCUMENT = create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused")).openapi()
OPERATIONS = [
    f"{method.upper()} {path}" for path, methods in DOCUMENT["paths"].items() for method in methods
]
OPERATIONS_SERVED = 52

# Operations whose error answers are not in the document, in files owned elsewhere: fuzzed for
# everything but the status check, and reproduced by test_undocumented_answer (strict xfail).
# Each entry: (method, url, request keywords, caller) that gives an undocumented status.
UNDOCUMENTED: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "POST /api/v1/import/{kind}": (
        "post",
        "/api/v1/import/points",
        {"data": {"crs": "EPSG:4326"}, "files": {"file": ("p.csv", b"code,lon,lat\n")}},
        "anonymous",
    ),
    "GET /api/v1/export/{kind}": ("get", "/api/v1/export/grids?generation=999999", {}, "anonymous"),
    "POST /map/login": ("post", "/map/login", {"data": {"token": "wg_nope"}}, "anonymous"),
    "GET /map/street": ("get", "/map/street", {}, "bogus"),
    "GET /map/editor": ("get", "/map/editor", {}, "bogus"),
    "GET /map/grids/{code}": ("get", "/map/grids/nope", {}, "anonymous"),
    "GET /map/events/{event_id}": ("get", "/map/events/999999", {}, "anonymous"),
    "GET /map/checks/{check_id}": ("get", "/map/checks/999999", {}, "anonymous"),
    "GET /map/drafts/{draft_id}/edit": ("get", "/map/drafts/999999/edit", {}, "anonymous"),
    "GET /map/drafts/{draft_id}/diff": ("get", "/map/drafts/999999/diff", {}, "anonymous"),
}
UNDOCUMENTED_REASON = (
    "error answers (401/403/404…) missing from the OpenAPI document: api/routes/transfer.py's "
    "router and web/pages.py's routes need responses=api.errors.error_responses(...)"
)


# Reported bugs outside the files this suite may fix: the fuzzer steps around them (so it keeps
# finding new ones) and test_known_bug reproduces each (strict xfail, so the fix is noticed).
KNOWN_BUGS: dict[str, tuple[Callable[[Any], bool], tuple[str, str, dict[str, Any], str], str]] = {
    "POST /api/v1/coverage/checks": (
        lambda case: isinstance(case.body, dict) and case.body.get("min_gap_area_m2") == 0,
        ("post", "/api/v1/coverage/checks", {"json": {"min_gap_area_m2": 0}}, "planner"),
        "spatial/coverage.py _check_family: a fully covered parent leaves an empty uncovered part "
        "whose area 0 passes `part.area < min_gap_area_m2` when that is 0, and "
        "shapely.maximum_inscribed_circle(POLYGON EMPTY) raises: 500",
    ),
}


@dataclass
class Target:
    client: TestClient
    engine: Engine
    headers: dict[str, dict[str, str]]
    token_ids: list[int]
    schema: Any
    cases: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def target(admin_url: str, template_url: str, request) -> Iterator[Target]:
    name = f"wangge_fuzz_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=TEMPLATE)
    engine = create_engine(url)
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    token_ids = []
    with engine.begin() as connection:
        for role in Role:
            grids = ("320571005001001",) if role == Role.field_staff else ()
            created = create_token(
                connection, name=f"fuzz-{role.value}", role=role, grid_codes=grids, actor="tests"
            )
            headers[role.value] = bearer(created.secret)
            token_ids.append(created.id)
    headers["bogus"] = bearer("wg_" + uuid.uuid4().hex)
    found = Target(None, engine, headers, token_ids, None)  # type: ignore[arg-type]
    try:
        app = create_app(Settings(database_url=url))
        with TestClient(app, raise_server_exceptions=False) as client:  # a 500 is an answer
            found.client = client
            found.schema = schemathesis.openapi.from_dict(client.get("/api/v1/openapi.json").json())
            yield found
    finally:
        engine.dispose()
        drop_database(admin_url, name)
        plugins = request.config.pluginmanager
        reporter, capture = (
            plugins.get_plugin("terminalreporter"),
            plugins.get_plugin("capturemanager"),
        )
        if reporter is not None and capture is not None and found.cases:
            with capture.global_and_fixture_disabled():
                reporter.write_line(
                    f"\nfuzz: {len(found.cases)} operations, {sum(found.cases.values())} cases "
                    f"(up to {EXAMPLES} examples each, as {len(CALLERS)} kinds of caller)"
                )


def test_the_document_lists_every_operation():
    assert len(OPERATIONS) == len(set(OPERATIONS)) == OPERATIONS_SERVED
    assert set(UNDOCUMENTED) <= set(OPERATIONS)


def _send(target: Target, case: Any, caller: str):
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=target.headers[caller])
    kwargs.pop("base_url", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), str | bytes):  # a raw body, in httpx's words
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("files"):  # multipart parts generated as numbers travel as their text
        kwargs["files"] = [
            (name, (filename, value if isinstance(value, str | bytes) else str(value)))
            for name, (filename, value, *_) in kwargs["files"]
        ]
    try:
        response = target.client.request(follow_redirects=False, **kwargs)
    except httpx.InvalidURL:  # longer than any client sends (httpx caps a query at 64 KiB)
        reject()
    target.client.cookies.clear()  # a login answer must not authorise the next case
    response.request.read()  # multipart bodies stream; the checks' reports read them again
    if case.method == "DELETE" and case.path.startswith("/api/v1/tokens/"):
        # Keep every role's token usable whatever the fuzzer revoked.
        with target.engine.begin() as connection:
            connection.execute(
                text("UPDATE api_token SET revoked_at = NULL WHERE id = ANY(:ids)"),
                {"ids": target.token_ids},
            )
        target.client.app.state.token_cache.clear()
    return response


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz(target, label):
    operation = target.schema.find_operation_by_label(label)
    checks = [c for c in CHECKS if not (label in UNDOCUMENTED and c is status_code_conformance)]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not LONG_RUN,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, caller=st.sampled_from(CALLERS))
    def fuzz(case, caller):
        if label in KNOWN_BUGS:
            assume(not KNOWN_BUGS[label][0](case))
        target.cases[label] += 1
        response = _send(target, case, caller)
        case.validate_response(response, checks=checks)

    fuzz()


@pytest.mark.xfail(strict=True, reason=UNDOCUMENTED_REASON)
@pytest.mark.parametrize("label", sorted(UNDOCUMENTED))
def test_undocumented_answer(target, label):
    method, url, kwargs, caller = UNDOCUMENTED[label]
    response = target.client.request(method, url, headers=target.headers[caller], **kwargs)
    documented = DOCUMENT["paths"][label.split(" ", 1)[1]][method]["responses"]
    assert response.status_code < 500
    assert str(response.status_code) in documented, (response.status_code, sorted(documented))


@pytest.mark.parametrize(
    "label",
    [
        pytest.param(label, marks=pytest.mark.xfail(strict=True, reason=reason))
        for label, (_, _, reason) in sorted(KNOWN_BUGS.items())
    ],
)
def test_known_bug(target, label):
    _, (method, url, kwargs, caller), reason = KNOWN_BUGS[label]
    response = target.client.request(method, url, headers=target.headers[caller], **kwargs)
    assert response.status_code < 500, reason


# What the fuzzer found, pinned: each was a 500 before it was fixed.
FOUND = [
    # api/routes/params.py Instant: PostgreSQL refuses UTC offsets beyond ±15:59.
    ("get", "/api/v1/grids", {"params": {"at": "2024-01-01T00:00:00+19:00"}}, "anonymous"),
    ("get", "/api/v1/export/grids", {"params": {"at": "2024-01-01T00:00:00-22:23"}}, "anonymous"),
    ("get", "/api/v1/grids", {"params": {"at": "0001-01-01T00:00:00+01:00"}}, "anonymous"),
    (
        "post",
        "/api/v1/tokens",
        {"json": {"name": "x", "role": "viewer", "expires_at": "2030-01-01T00:00:00+19:00"}},
        "admin",
    ),
    (
        "post",
        "/api/v1/events",
        {
            "json": {
                "source": "t",
                "external_id": "a",
                "address": "x",
                "reported_at": "2024-01-01T00:00+19:00",
            }
        },
        "dispatcher",
    ),
    # api/events.py: the due time of an event reported at the end of the calendar overflowed.
    (
        "post",
        "/api/v1/events",
        {
            "json": {"source": "t", "external_id": "b", "address": "x", "category_code": "E04"}
            | {"reported_at": "9999-12-31T23:00:00+00:00"}
        },
        "dispatcher",
    ),
    # api/deps.py refuse_nul_characters: PostgreSQL text cannot hold U+0000.
    ("get", "/api/v1/drafts/1/stats", {"params": {"codes": "a\x00"}}, "anonymous"),
    ("get", "/api/v1/grids", {"params": {"parent": "a\x00"}}, "anonymous"),
    ("get", "/api/v1/buildings", {"params": {"grid": "a\x00"}}, "anonymous"),
    ("post", "/api/v1/drafts", {"json": {"name": "a\x00"}}, "planner"),
    (
        "post",
        "/api/v1/events",
        {"json": {"source": "t", "external_id": "c", "address": "x", "description": "a\x00"}},
        "dispatcher",
    ),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "caller"), FOUND)
def test_found_by_fuzzing(target, method, url, kwargs, caller):
    response = target.client.request(method, url, headers=target.headers[caller], **kwargs)
    assert response.status_code == 422, response.text
