"""OGC API – Features Part 4 (Create, Replace, Update, Delete) on a draft's grids.

Writes go into an open draft only (collection `drafts-{id}-grids`), never into the active
generation, through the drafts API's own edits (api/drafts/edits.py): one request is one edit,
one transaction and one new draft version, with the same rules and the same coverage-keeping
geometry operations. Mapping:

- POST   items           → create (GeoJSON Feature; `properties.code` or `id` optional)
- PUT    items/{code}    → replace: geometry reshaped (neighbours give and take the difference)
                           and every writable property set to the body's (absent → empty)
- PATCH  items/{code}    → JSON merge patch (RFC 7396) of the same representation: properties
                           given change (null clears), a geometry is reshaped as for PUT
- DELETE items/{code}    → delete (`?with_children=true` deletes its descendants too)

Optimistic locking: the draft version. A write names the version it was made on by `If-Match`
(`"draft-{id}-v{version}"`, `"{version}"`, or the read side's draft revision `"d{id}.{g}.{v}…"`)
or by a `draft_version` member of the body (the query for DELETE): none → 428, another → 412,
and a successful write answers with the new version's ETag `"draft-{id}-v{version}"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy import Connection, Engine

from api.db.grids import get_grid
from api.drafts import edits
from api.drafts.versions import StaleDraft, draft_by_id
from api.errors import Conflict, InvalidInput, NotFound, WanggeError
from api.ogc import edit_input
from api.ogc.collections import resolve
from api.privacy import Caller
from spatial.crs import WGS84
from spatial.editing import EditError, GridRow

PART4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf"
CONFORMANCE: list[str] = [
    f"{PART4}/create-replace-delete",
    f"{PART4}/update",
    f"{PART4}/features",
    # GET answers an ETag that starts with the draft's version; If-Match with it writes once,
    # a stale one is 412 (tests/test_ogc_edit.py::test_the_draft_version_is_required_and_checked).
    f"{PART4}/optimistic-locking-etags",
]

DRAFT_COLLECTION = re.compile(r"^drafts-([0-9]{1,9})-grids$")
ITEMS_ALLOW = ("GET", "HEAD", "POST", "OPTIONS")
ITEM_ALLOW = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS")
READ_ALLOW = ("GET", "HEAD", "OPTIONS")
# Our ETag "draft-{id}-v{version}", a bare "{version}", or the read side's revision of the draft
# collection ("d{id}.{generation}.{version}", optionally followed by representation details).
_ETAG = re.compile(
    r"^(?:draft-(?P<draft>[0-9]{1,9})-v|d(?P<read>[0-9]{1,9})\.[0-9]{1,9}\.)?"
    r"(?P<version>[0-9]{1,9})(?(read)(?:[^0-9].*)?)$"
)


class PreconditionFailed(WanggeError):
    status = 412
    code = "stale_draft"


class PreconditionRequired(WanggeError):
    status = 428
    code = "version_required"


class ReadOnlyCollection(WanggeError):
    status = 405
    code = "read_only_collection"


def draft_id_of(connection: Connection, collection_id: str, caller: Caller) -> int:
    """The draft behind `drafts-{id}-grids`; any other collection is read-only here (405), or
    unknown (404)."""
    match = DRAFT_COLLECTION.match(collection_id)
    if match is None:
        resolve(connection, collection_id, caller)
        raise ReadOnlyCollection(
            f"集合 {collection_id} 只读：编辑请在草稿中进行（集合 drafts-{{草稿编号}}-grids）",
            where="path.collectionId",
        )
    return int(match.group(1))


def writable_draft(connection: Connection, collection_id: str, caller: Caller) -> int | None:
    """For OPTIONS: the open draft behind the id (409 when closed), None for a read-only
    collection (404 when unknown)."""
    try:
        draft_id = draft_id_of(connection, collection_id, caller)
    except ReadOnlyCollection:
        return None
    draft = draft_by_id(connection, draft_id)
    if draft.status != "open":
        raise _closed(draft_id, draft.status)
    return draft_id


def _closed(draft_id: int, status: str) -> Conflict:
    state = "发布" if status == "published" else "放弃"
    return Conflict(f"草稿 {draft_id} 已{state}，不能再编辑", code="draft_closed")


def etag(draft_id: int, version: int) -> str:
    return f'"draft-{draft_id}-v{version}"'


# --- the version a write was made on ---------------------------------------------------------
@dataclass(frozen=True)
class Precondition:
    versions: tuple[int, ...]  # any of these (If-Match may list several)
    where: str


def precondition(
    draft_id: int, if_match: str | None, member: Any, member_where: str
) -> Precondition:
    """The draft version(s) the caller read: If-Match first, else the `draft_version` member."""
    if if_match is not None and if_match.strip() not in ("", "*"):
        versions = []
        for token in if_match.split(","):
            token = token.strip()
            if token.startswith("W/"):  # a weak tag never matches (RFC 9110 §13.1.1)
                continue
            match = _ETAG.match(token.strip('"'))
            named = match and (match.group("draft") or match.group("read"))
            if match is None or (named and int(named) != draft_id):
                continue
            versions.append(int(match.group("version")))
        return Precondition(tuple(versions), "header.If-Match")
    if member is None:
        raise PreconditionRequired(
            f"写入需要草稿版本：请求头 If-Match: {etag(draft_id, 0)}（取自读取时的 ETag），"
            "或请求体中的 draft_version",
            where="header.If-Match",
        )
    if isinstance(member, bool) or not isinstance(member, int) or member < 0:
        raise InvalidInput("draft_version 应为非负整数", code="invalid_version", where=member_where)
    return Precondition((member,), member_where)


def _current_version(precondition_: Precondition, engine: Engine, draft_id: int) -> int:
    """The version to lock at: the one named that is current (412 if none is)."""
    with engine.connect() as connection:
        draft = draft_by_id(connection, draft_id)
    if draft.status != "open":
        raise _closed(draft_id, draft.status)
    if draft.version not in precondition_.versions:
        raise _stale(draft.version, precondition_)
    return draft.version


def _stale(current: int, precondition_: Precondition) -> PreconditionFailed:
    named = "、".join(str(v) for v in precondition_.versions)
    return PreconditionFailed(
        f"草稿已被修改（当前版本 {current}，你的版本 {named}）：请重新读取后再改"
        if named
        else f"If-Match 中没有本草稿的有效版本（当前版本 {current}）：请重新读取后再改",
        where=precondition_.where,
        details=[{"current_version": current}],
    )


# --- the operations ------------------------------------------------------------------------
def _placed(error: EditError) -> WanggeError:
    """An edit's error, naming where the field sits in a GeoJSON Feature."""
    field = error.field or ""
    where = f"body.{field}" if field in ("geometry", "") else f"body.properties.{field}"
    if field == "with_children":
        where = "query.with_children"
    answer = NotFound if error.code == "grid_not_found" else InvalidInput
    return answer(str(error), code=error.code, where=where.rstrip("."))


def _properly_placed(error: WanggeError) -> WanggeError:
    if (
        error.where
        and error.where.startswith("body.")
        and error.where[5:] in edit_input.Properties.model_fields
    ):
        error.where = f"body.properties.{error.where[5:]}"
    return error


def _edit(engine: Engine, draft_id: int, wanted: Precondition, run: Any) -> dict[str, Any]:
    version = _current_version(wanted, engine, draft_id)
    try:
        return dict(run(version))
    except StaleDraft as error:  # a colleague saved between our look and the lock
        raise _stale(error.details[0]["current_version"], wanted) from error
    except EditError as error:
        raise _placed(error) from error
    except WanggeError as error:
        raise _properly_placed(error) from error


@dataclass(frozen=True)
class Write:
    engine: Engine
    draft_id: int
    actor: str
    if_match: str | None
    crs: tuple[str, bool] = (WGS84, False)  # of the body's coordinates (edit_input.content_crs)


def create(write: Write, body: Any) -> dict[str, Any]:
    feature = edit_input.feature(body, "GeoJSON Feature")
    if feature.get("type") != "Feature":
        raise InvalidInput(
            "请求体应为一个 GeoJSON Feature（每次创建一个）",
            code="invalid_feature",
            where="body.type",
        )
    props = edit_input.properties(feature.get("properties"), partial=False)
    code = _code_from_id(feature.get("id"), props["code"])
    if props["level"] is None:
        raise InvalidInput(
            "需要 level（层级）", code="level_required", where="body.properties.level"
        )
    geometry = edit_input.feature_geometry(feature.get("geometry"), write.crs)
    wanted = precondition(
        write.draft_id, write.if_match, feature.get("draft_version"), "body.draft_version"
    )
    row = GridRow(
        code or "",
        props["name"],
        props["level"],
        props["kind"],
        props["parent_code"],
        props["households"],
        props["population"],
        {},
        geometry,
    )
    return _edit(
        write.engine,
        write.draft_id,
        wanted,
        lambda version: edits.create(write.engine, write.draft_id, row, version, write.actor),
    )


def _code_from_id(feature_id: Any, code: str | None) -> str | None:
    if feature_id is None:
        return code
    if not isinstance(feature_id, str) or (code is not None and code != feature_id):
        raise InvalidInput(
            "id 应与 properties.code 相同（网格编码）", code="invalid_feature", where="body.id"
        )
    return feature_id


def _level(write: Write, code: str) -> str:
    with write.engine.connect() as connection:
        return grid_in_draft(connection, write.draft_id, code)


def grid_in_draft(connection: Connection, draft_id: int, code: str) -> str:
    """The level of the draft's grid `code`, or 404 (the draft first: 404 draft_not_found)."""
    draft = draft_by_id(connection, draft_id)
    found = get_grid(connection, code, draft.generation_id)
    if found is None:
        raise NotFound(f"草稿中没有网格 {code}", code="feature_not_found", where="path.featureId")
    return str(found["properties"]["level"])


def replace(write: Write, code: str, body: Any) -> dict[str, Any]:
    """PUT: the body is the grid's new representation (its level and code stay)."""
    feature = edit_input.feature(body, "GeoJSON Feature")
    if feature.get("type") != "Feature":
        raise InvalidInput("请求体应为 GeoJSON Feature", code="invalid_feature", where="body.type")
    props = edit_input.properties(feature.get("properties"), partial=False)
    if _code_from_id(feature.get("id"), props.pop("code")) not in (None, code):
        raise InvalidInput(
            "PUT 不能修改编码：请用 PATCH 的 properties.code",
            code="invalid_feature",
            where="body.id",
        )
    geometry = edit_input.feature_geometry(feature.get("geometry"), write.crs)
    wanted = precondition(
        write.draft_id, write.if_match, feature.get("draft_version"), "body.draft_version"
    )
    return _changed(write, code, props, geometry, wanted, "replace")


def update(write: Write, code: str, body: Any) -> dict[str, Any]:
    """PATCH: a JSON merge patch of the representation; a geometry given is reshaped."""
    patch = edit_input.feature(body, "JSON merge patch（application/merge-patch+json）")
    unknown = sorted(
        set(patch) - {"type", "id", "geometry", "properties", "draft_version", "links", "bbox"}
    )
    if unknown:
        raise InvalidInput(
            f"未知的成员 {unknown[0]}", code="unknown_property", where=f"body.{unknown[0]}"
        )
    if "geometry" in patch and patch["geometry"] is None:
        raise InvalidInput("网格不能没有几何", code="invalid_geometry", where="body.geometry")
    props = edit_input.properties(patch.get("properties", {}) or {}, partial=True)
    if "id" in patch and patch["id"] != code:
        props.setdefault("code", _code_from_id(patch["id"], props.get("code")))
    for required in ("name", "code", "kind"):
        if required in props and props[required] is None:
            raise InvalidInput(
                f"{required} 不能清空", code="invalid_property", where=f"body.properties.{required}"
            )
    geometry = (
        edit_input.feature_geometry(patch["geometry"], write.crs) if "geometry" in patch else None
    )
    if not props and geometry is None:
        raise InvalidInput("没有要修改的内容", code="nothing_to_change", where="body")
    wanted = precondition(
        write.draft_id, write.if_match, patch.get("draft_version"), "body.draft_version"
    )
    return _changed(write, code, props, geometry, wanted, "update")


def _changed(
    write: Write,
    code: str,
    props: dict[str, Any],
    geometry: shapely.Geometry | None,
    wanted: Precondition,
    operation: str,
) -> dict[str, Any]:
    current = _level(write, code)
    level = props.pop("level", None)
    if level is not None and level != current:
        raise InvalidInput(
            f"不能修改层级（{current}）：请删除后在 {level} 层级新建",
            code="level_immutable",
            where="body.properties.level",
        )
    return _edit(
        write.engine,
        write.draft_id,
        wanted,
        lambda version: edits.replace(
            write.engine, write.draft_id, code, props, geometry, version, write.actor, operation
        ),
    )


def delete(
    write: Write, code: str, with_children: bool, draft_version: int | None
) -> dict[str, Any]:
    wanted = precondition(write.draft_id, write.if_match, draft_version, "query.draft_version")
    _level(write, code)
    return _edit(
        write.engine,
        write.draft_id,
        wanted,
        lambda version: edits.delete(
            write.engine, write.draft_id, code, with_children, version, write.actor
        ),
    )
