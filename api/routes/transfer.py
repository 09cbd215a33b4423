"""Import (upload) and export (download) of grids, buildings and monitoring points."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from sqlalchemy import Connection
from starlette.background import BackgroundTask

from api.deps import CallerDep, EngineDep, HeavyDep, PlannerDep, SettingsDep
from api.errors import InvalidInput, error_responses
from api.replica import ReplicaConnectionDep, ReplicaEngineDep
from api.routes.params import GenerationDep, known_level
from api.routes.uploads import client_named_errors, save_upload
from api.transfer.export import EXPORT_FORMATS, export_layer, zip_shapefile
from api.transfer.guard import gdal_encoding
from api.transfer.imports import ImportOptions, run_import
from api.transfer.read import FORMATS, CsvColumns, read_layer, unpack_limits

router = APIRouter(
    tags=["import and export"], responses=error_responses(400, 401, 403, 404, 413, 422, 503)
)
MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
    "shp": "application/zip",
    "kml": "application/vnd.google-earth.kml+xml",
    "csv": "text/csv",
}
Kind = Literal["grids", "buildings", "points", "roads", "compounds", "pois", "house-numbers"]
# File names on disk come from here, never from the request.
EXPORT_FILES = {
    "grids": "grids",
    "buildings": "buildings",
    "points": "points",
    "roads": "roads",
    "compounds": "compounds",
    "pois": "pois",
    "house-numbers": "house_numbers",
}
SAFE_NAME = re.compile(r"[^\w-]")


@router.post(
    "/import/{kind}",
    summary="Import a file of grids, buildings, monitoring points or gazetteer places (planner/admin)",
    description=(
        "Multipart upload. Grids need `level`; every import is validated as a whole and written in "
        "one transaction, or rejected with a 422 whose `details` name row, field and reason. A grid "
        "import creates and activates a new generation (or, with `draft`, a new draft to review and "
        "publish). `dry_run=true` reports without writing."
    ),
)
def import_file(
    kind: Kind,
    engine: EngineDep,
    settings: SettingsDep,
    principal: PlannerDep,
    file: Annotated[
        UploadFile, File(description="GeoJSON, GeoPackage, zipped Shapefile, KML/KMZ or CSV")
    ],
    level: Annotated[str | None, Form()] = None,
    crs: Annotated[str | None, Form()] = None,
    code_field: Annotated[str | None, Form()] = None,
    name_field: Annotated[str | None, Form()] = None,
    parent_field: Annotated[str | None, Form()] = None,
    layer: Annotated[str | None, Form()] = None,
    encoding: Annotated[str | None, Form()] = None,
    lon_field: Annotated[str | None, Form()] = None,
    lat_field: Annotated[str | None, Form()] = None,
    wkt_field: Annotated[str | None, Form()] = None,
    repair: Annotated[bool, Form()] = False,
    replace: Annotated[bool, Form()] = False,
    dry_run: Annotated[bool, Form()] = False,
    draft: Annotated[
        str | None,
        Form(description="Grids only: load into a new draft of this name instead of activating"),
    ] = None,
    require_clean: Annotated[
        bool,
        Form(
            description="Grids only: refuse to activate (write nothing) when the coverage check finds errors"
        ),
    ] = False,
) -> dict[str, Any]:
    if kind == "grids" and not level:
        raise InvalidInput(
            "导入网格需要 level（street/community/grid/micro_grid）",
            code="level_required",
            where="body.level",
        )
    options = ImportOptions(
        crs=crs,
        fields={"code": code_field, "name": name_field, "parent": parent_field},
        repair=repair,
        dry_run=dry_run,
        replace=replace,
        actor=principal.actor,
        draft=draft,
        require_clean=require_clean,
    )
    _check_encoding(encoding, "body.encoding")
    with tempfile.TemporaryDirectory(prefix="wangge-upload-") as folder:
        saved = save_upload(
            file,
            Path(folder),
            FORMATS,
            ".geojson/.json、.gpkg、.zip（Shapefile）、.kml/.kmz 或 .csv",
            settings.limits.max_upload_bytes,
        )
        with client_named_errors(saved):
            source = read_layer(
                saved.path,
                layer=layer,
                encoding=encoding,
                csv_columns=CsvColumns(lon_field, lat_field, wkt_field),
                limits=unpack_limits(settings.limits),
            )
        source.path = Path(saved.name)  # reports and generated codes name the client's file
        report = run_import(engine, kind, source, options, level)
    return report.as_dict()


def _check_encoding(encoding: str | None, where: str) -> None:
    if encoding is None:
        return
    try:
        gdal_encoding(encoding)
    except ValueError as error:
        raise InvalidInput(str(error), code="invalid_encoding", where=where) from error


@router.get(
    "/export/{kind}",
    summary="Download grids, buildings or monitoring points as a file",
    description=(
        "The free columns of imported files (owners, phones…) are included only for callers who "
        "may see all personal data (planner, dispatcher, admin). At most a few exports run at "
        "once; the rest wait, then get 503 `busy`."
    ),
    responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
)
def export_file(
    kind: Kind,
    engine: ReplicaEngineDep,
    connection: ReplicaConnectionDep,
    caller: CallerDep,
    heavy: HeavyDep,
    generation: GenerationDep,
    format: Annotated[Literal["geojson", "gpkg", "shp", "kml", "csv"], Query()] = "geojson",
    level: Annotated[str | None, Query(description="Only this level (grids)")] = None,
    crs: Annotated[str, Query(description="Output CRS, e.g. EPSG:4490")] = "EPSG:4326",
    encoding: Annotated[
        str | None, Query(description="Shapefile attribute encoding, e.g. GBK")
    ] = None,
) -> FileResponse:
    _check_level(connection, kind, level)
    _check_encoding(encoding, "query.encoding")
    stem = f"{kind}-{SAFE_NAME.sub('_', level)}" if level else kind  # shown, never a path
    with heavy.slot():
        folder = Path(tempfile.mkdtemp(prefix="wangge-export-"))  # mode 0700, this request's
        try:
            target = _inside(folder, EXPORT_FILES[kind] + EXPORT_FORMATS[format].suffix)
            export_layer(
                engine,
                kind,
                target,
                format_name=format,
                level=level,
                generation=generation,
                crs=crs,
                encoding=encoding,
                include_attributes=caller.sees_all_personal,
            )
            path = zip_shapefile(target, member_stem=stem) if format == "shp" else target
        except Exception:  # ExportError and the rest: answered by api/errors.py, folder gone
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[format],
        filename=stem + path.suffix,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def _check_level(connection: Connection, kind: str, level: str | None) -> None:
    if level is None:
        return
    if kind != "grids":
        raise InvalidInput(
            "只有网格按层级导出；楼栋和监控点不接受 level",
            code="level_not_applicable",
            where="query.level",
        )
    known_level(connection, level)


def _inside(folder: Path, name: str) -> Path:
    """folder/name, asserting it stays in folder (names are constants; this keeps them so)."""
    target = (folder / name).resolve()
    if target.parent != folder.resolve():
        raise RuntimeError(f"export file {name!r} would leave its folder")
    return target
