"""Import (upload) and export (download) of grids, buildings and monitoring points."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.deps import EngineDep, PlannerDep, ReaderDep
from api.errors import InvalidInput, NotFound
from api.routes.params import GenerationDep
from api.routes.uploads import save_upload
from api.transfer.export import (
    EXPORT_FORMATS,
    ExportError,
    NothingToExport,
    export_layer,
    zip_shapefile,
)
from api.transfer.imports import ImportOptions, run_import
from api.transfer.read import FORMATS, CsvColumns, UnreadableFile, read_layer

router = APIRouter(tags=["import and export"])
MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
    "shp": "application/zip",
    "kml": "application/vnd.google-earth.kml+xml",
    "csv": "text/csv",
}
Kind = Literal["grids", "buildings", "points"]


@router.post(
    "/import/{kind}",
    summary="Import a file of grids, buildings or monitoring points (planner/admin)",
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
    with tempfile.TemporaryDirectory(prefix="wangge-upload-") as folder:
        path = save_upload(
            file,
            Path(folder),
            FORMATS,
            ".geojson/.json、.gpkg、.zip（Shapefile）、.kml/.kmz 或 .csv",
        )
        try:
            source = read_layer(
                path,
                layer=layer,
                encoding=encoding,
                csv_columns=CsvColumns(lon_field, lat_field, wkt_field),
            )
        except UnreadableFile as error:
            raise InvalidInput(
                str(error).replace(folder + "/", ""), code="unreadable_file", where="body.file"
            ) from error
        report = run_import(engine, kind, source, options, level)
    return report.as_dict()


@router.get(
    "/export/{kind}",
    summary="Download grids, buildings or monitoring points as a file",
    responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
)
def export_file(
    kind: Kind,
    engine: EngineDep,
    _: ReaderDep,
    generation: GenerationDep,
    format: Annotated[Literal["geojson", "gpkg", "shp", "kml", "csv"], Query()] = "geojson",
    level: Annotated[str | None, Query(description="Only this level (grids)")] = None,
    crs: Annotated[str, Query(description="Output CRS, e.g. EPSG:4490")] = "EPSG:4326",
    encoding: Annotated[
        str | None, Query(description="Shapefile attribute encoding, e.g. GBK")
    ] = None,
) -> FileResponse:
    folder = Path(tempfile.mkdtemp(prefix="wangge-export-"))
    name = f"{kind}{'-' + level if level else ''}{EXPORT_FORMATS[format].suffix}"
    try:
        export_layer(
            engine,
            kind,
            folder / name,
            format_name=format,
            level=level,
            generation=generation,
            crs=crs,
            encoding=encoding,
        )
    except ExportError as error:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(error, NothingToExport):
            raise NotFound(str(error), code="nothing_to_export") from error
        raise InvalidInput(str(error), code="invalid_export", where="query") from error
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    path = zip_shapefile(folder / name) if format == "shp" else folder / name
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[format],
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
