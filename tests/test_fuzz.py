"""Fuzzing every operation of the OpenAPI document with schemathesis, as every role.

Each operation gets WANGGE_FUZZ_EXAMPLES generated requests (valid and invalid ones, each sent as
a role drawn at random, anonymously or with an unknown token) against the app on a copy of the
demo database, connected as the service role. Every
answer must be below 500 and conform to the document: its status code is documented, and so are
its content type and body schema. `make test` runs a short, derandomised pass; `make fuzz` a long,
random one. The number of operations and cases is printed at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, reject, settings
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
from tests.faults.service import service_settings

EXAMPLES = int(os.environ.get("WANGGE_FUZZ_EXAMPLES", "25"))
LONG_RUN = "WANGGE_FUZZ_EXAMPLES" in os.environ  # make fuzz: random; make test: repeatable
CALLERS = [*(role.value for role in Role), "anonymous", "bogus"]  # bogus: an unknown token
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
OPERATIONS_SERVED = 117  # 21 of them OGC API Features/Tiles and /tiles (issue 14)


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
                connection,
                name=f"fuzz-{role.value}",
                role=role,
                grid_codes=grids,
                unit_code="community" if role == Role.handler else None,
                actor="tests",
            )
            headers[role.value] = bearer(created.secret)
            token_ids.append(created.id)
    headers["bogus"] = bearer("wg_" + uuid.uuid4().hex)
    found = Target(None, engine, headers, token_ids, None)  # type: ignore[arg-type]
    try:
        app = create_app(service_settings(url))
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
        target.cases[label] += 1
        response = _send(target, case, caller)
        case.validate_response(response, checks=CHECKS)

    fuzz()


# What the fuzzer found, pinned: each was a 500 before it was fixed; (request, answer now).
AT_19 = "2024-01-01T00:00:00+19:00"
EVENT = {"source": "t", "address": "x"}
FOUND = [
    # api/routes/params.py Instant: PostgreSQL refuses UTC offsets beyond ±15:59.
    ("get", "/api/v1/grids", {"params": {"at": AT_19}}, "anonymous", 422),
    ("get", "/api/v1/export/grids", {"params": {"at": "2024-01-01T00:00-22:23"}}, "anonymous", 422),
    ("get", "/api/v1/grids", {"params": {"at": "0001-01-01T00:00:00+01:00"}}, "anonymous", 422),
    (
        "post",
        "/api/v1/tokens",
        {"json": {"name": "x", "role": "viewer", "expires_at": AT_19}},
        "admin",
        422,
    ),
    (
        "post",
        "/api/v1/events",
        {"json": EVENT | {"external_id": "a", "reported_at": AT_19}},
        "dispatcher",
        422,
    ),
    # api/events.py: the due time of an event reported at the end of the calendar overflowed.
    (
        "post",
        "/api/v1/events",
        {
            "json": EVENT
            | {"external_id": "b", "category_code": "E04", "reported_at": "9999-12-31T23:00Z"}
        },
        "dispatcher",
        422,
    ),
    # api/deps.py refuse_nul_characters: PostgreSQL text cannot hold U+0000.
    ("get", "/api/v1/drafts/1/stats", {"params": {"codes": "a\x00"}}, "anonymous", 422),
    ("get", "/api/v1/grids", {"params": {"parent": "a\x00"}}, "anonymous", 422),
    ("get", "/api/v1/buildings", {"params": {"grid": "a\x00"}}, "anonymous", 422),
    ("post", "/api/v1/drafts", {"json": {"name": "a\x00"}}, "planner", 422),
    (
        "post",
        "/api/v1/events",
        {"json": EVENT | {"external_id": "c", "description": "a\x00"}},
        "dispatcher",
        422,
    ),
    # spatial/coverage.py: a fully covered parent left an empty "gap" when min_gap_area_m2 = 0.
    ("post", "/api/v1/coverage/checks", {"json": {"min_gap_area_m2": 0}}, "planner", 201),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "caller", "status"), FOUND)
def test_found_by_fuzzing(target, method, url, kwargs, caller, status):
    response = target.client.request(method, url, headers=target.headers[caller], **kwargs)
    assert response.status_code == status, response.text
