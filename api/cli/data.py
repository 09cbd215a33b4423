"""`wangge import …` and `wangge export …`."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.db.engine import make_engine
from api.db.generations import generation_at
from api.settings import get_settings
from api.transfer.export import EXPORT_FORMATS, export_layer
from api.transfer.gazetteer import PLACE_KINDS
from api.transfer.imports import ImportOptions, run_import
from api.transfer.read import CsvColumns, read_layer
from api.transfer.report import ImportRejected, ImportReport

console = Console(soft_wrap=True)

Crs = Annotated[str | None, typer.Option(help="源坐标系（EPSG 代码等）；文件未声明时必填")]
CodeField = Annotated[str | None, typer.Option(help="编码字段名（默认自动识别 code/编码…）")]
NameField = Annotated[str | None, typer.Option(help="名称字段名（默认自动识别 name/名称…）")]
Layer = Annotated[str | None, typer.Option(help="多图层文件中的图层名")]
Encoding = Annotated[
    str | None, typer.Option(help="属性表编码（Shapefile 无 .cpg 时自动识别 UTF-8/GBK）")
]
LonField = Annotated[str | None, typer.Option(help="CSV 经度列")]
LatField = Annotated[str | None, typer.Option(help="CSV 纬度列")]
WktField = Annotated[str | None, typer.Option(help="CSV 的 WKT 几何列")]
Repair = Annotated[bool, typer.Option("--repair", help="修复无效几何并在报告中列出（默认拒绝）")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="只检查并报告，不写入")]
AsJson = Annotated[bool, typer.Option("--json", help="以 JSON 输出报告")]


class Kind(StrEnum):
    grids = "grids"
    buildings = "buildings"
    points = "points"
    roads = "roads"
    compounds = "compounds"
    pois = "pois"
    house_numbers = "house-numbers"


class Format(StrEnum):
    geojson = "geojson"
    gpkg = "gpkg"
    shp = "shp"
    kml = "kml"
    csv = "csv"


assert {f.value for f in Format} == set(EXPORT_FORMATS)


def register(app: typer.Typer) -> None:
    importer = typer.Typer(
        help="导入网格、楼栋、监控点、道路、小区、兴趣点、门牌（GeoJSON/GeoPackage/Shapefile/KML/CSV）",
        no_args_is_help=True,
    )
    app.add_typer(importer, name="import")
    importer.command("grids")(import_grids_command)
    importer.command("buildings")(import_buildings_command)
    importer.command("points")(import_points_command)
    for kind in PLACE_KINDS:
        importer.command(kind)(_place_command(kind))
    app.command("export")(export_command)


def _read(path: Path, layer, encoding, lon_field, lat_field, wkt_field):
    with console.status(f"读取 {path.name} …"):
        return read_layer(
            path,
            layer=layer,
            encoding=encoding,
            csv_columns=CsvColumns(lon_field, lat_field, wkt_field),
        )


def _show(report: ImportReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str))
        return
    verb = "将" if report.dry_run else "已"
    console.print(
        f"{report.file}（{report.format}，{report.features} 个要素，坐标系 {report.crs}"
        + (f"，编码 {report.encoding}" if report.encoding else "")
        + "）",
        highlight=False,
    )
    console.print(
        f"  {verb}新增 {report.created}，{verb}更新 {report.updated}，未变 {report.unchanged}"
        + (f"，{verb}删除 {report.removed}" if report.removed else ""),
        highlight=False,
    )
    for item in report.repaired:
        console.print(
            f"  [yellow]已修复[/yellow] 第 {item['row']} 个要素 {item.get('code') or ''}：{item['reason']}"
            f"（面积 {item.get('area_before_m2')} → {item.get('area_after_m2')} m²）",
            highlight=False,
        )
    for note in report.notes:
        console.print(f"  注意：{note}", highlight=False)
    if report.draft_id:
        console.print(
            f"  已创建草稿 {report.draft_id}（第 {report.generation} 版，未启用）："
            f"在 /map/drafts/{report.draft_id}/edit 审阅、修改并发布"
        )
    elif report.generation:
        console.print(f"  已创建并启用第 {report.generation} 版网格")
    if report.coverage is not None:
        console.print(
            f"  覆盖检查 #{report.coverage['check_id']}：错误 {report.coverage['errors']} 个，"
            f"提示 {report.coverage['warnings']} 个（/map/checks/{report.coverage['check_id']}）",
            highlight=False,
        )
    if report.events is not None:
        console.print(
            f"  在办事件：改派 {report.events['events_reassigned']} 件，"
            f"不在任何网格、转人工分派 {report.events['events_unplaced']} 件",
            highlight=False,
        )
    if report.dry_run:
        console.print("  [cyan]试运行：未写入任何数据[/cyan]")


def _run(
    kind: str,
    path: Path,
    options: ImportOptions,
    read_args: tuple,
    as_json: bool,
    level: str | None = None,
) -> None:
    source = _read(path, *read_args)
    engine = make_engine(get_settings())
    try:
        with console.status("检查并写入 …"):
            report = run_import(engine, kind, source, options, level)
    except ImportRejected as rejected:
        if as_json:
            print(json.dumps(rejected.report.as_dict(), ensure_ascii=False, indent=2, default=str))
            raise typer.Exit(1) from rejected
        raise
    _show(report, as_json)


def import_grids_command(
    path: Annotated[Path, typer.Argument(help="文件路径")],
    level: Annotated[str, typer.Option(help="层级：street/community/grid/micro_grid")],
    crs: Crs = None,
    code_field: CodeField = None,
    name_field: NameField = None,
    parent_field: Annotated[
        str | None, typer.Option(help="上级编码字段名（缺省时按编码前缀或空间位置推断）")
    ] = None,
    layer: Layer = None,
    encoding: Encoding = None,
    lon_field: LonField = None,
    lat_field: LatField = None,
    wkt_field: WktField = None,
    repair: Repair = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="文件即该层级全部网格：删除文件中没有的")
    ] = False,
    dry_run: DryRun = False,
    draft: Annotated[
        str | None, typer.Option("--draft", help="导入为新草稿（给出草稿名），审阅后再发布")
    ] = None,
    require_clean: Annotated[
        bool,
        typer.Option("--require-clean", help="覆盖检查有错误时拒绝启用（不写入任何数据）"),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """导入网格：校验全部要素后在一个事务中写入新版本，经覆盖检查后启用（或用 --draft 导入为草稿）。"""
    fields = {"code": code_field, "name": name_field, "parent": parent_field}
    options = ImportOptions(
        crs=crs,
        fields=fields,
        repair=repair,
        dry_run=dry_run,
        replace=replace,
        draft=draft,
        require_clean=require_clean,
    )
    _run("grids", path, options, (layer, encoding, lon_field, lat_field, wkt_field), as_json, level)


def import_buildings_command(
    path: Annotated[Path, typer.Argument(help="文件路径")],
    crs: Crs = None,
    code_field: CodeField = None,
    name_field: NameField = None,
    layer: Layer = None,
    encoding: Encoding = None,
    repair: Repair = False,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """导入楼栋（按编码新增或更新）。"""
    options = ImportOptions(
        crs=crs, fields={"code": code_field, "name": name_field}, repair=repair, dry_run=dry_run
    )
    _run("buildings", path, options, (layer, encoding, None, None, None), as_json)


def import_points_command(
    path: Annotated[Path, typer.Argument(help="文件路径")],
    crs: Crs = None,
    code_field: CodeField = None,
    name_field: NameField = None,
    layer: Layer = None,
    encoding: Encoding = None,
    lon_field: LonField = None,
    lat_field: LatField = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """导入监控点（摄像头、传感器；按编码新增或更新）。"""
    options = ImportOptions(
        crs=crs, fields={"code": code_field, "name": name_field}, dry_run=dry_run
    )
    _run("points", path, options, (layer, encoding, lon_field, lat_field, None), as_json)


def _place_command(kind: str) -> Callable[..., None]:
    """`wangge import roads|compounds|pois|house-numbers FILE` (upserted by code)."""
    label = PLACE_KINDS[kind].label

    def command(
        path: Annotated[Path, typer.Argument(help="文件路径")],
        crs: Crs = None,
        code_field: CodeField = None,
        name_field: NameField = None,
        layer: Layer = None,
        encoding: Encoding = None,
        lon_field: LonField = None,
        lat_field: LatField = None,
        wkt_field: WktField = None,
        repair: Repair = False,
        dry_run: DryRun = False,
        as_json: AsJson = False,
    ) -> None:
        options = ImportOptions(
            crs=crs,
            fields={"code": code_field, "name": name_field},
            repair=repair,
            dry_run=dry_run,
        )
        _run(kind, path, options, (layer, encoding, lon_field, lat_field, wkt_field), as_json)

    aliases = "；别名用 | 分隔" if kind != "house-numbers" else "；门牌号如 19、19-1、19甲"
    command.__doc__ = f"导入{label}（按编码新增或更新{aliases}）。"
    return command


def export_command(
    kind: Annotated[
        Kind,
        typer.Argument(help="grids、buildings、points、roads、compounds、pois 或 house-numbers"),
    ],
    out: Annotated[Path, typer.Argument(help="输出文件（扩展名决定格式）")],
    level: Annotated[str | None, typer.Option(help="只导出该层级（网格）")] = None,
    format_name: Annotated[Format | None, typer.Option("--format", help="输出格式")] = None,
    generation: Annotated[int | None, typer.Option(help="网格版本（默认当前生效版本）")] = None,
    crs: Annotated[str, typer.Option(help="输出坐标系")] = "EPSG:4326",
    encoding: Annotated[str | None, typer.Option(help="Shapefile 属性表编码（如 GBK）")] = None,
) -> None:
    """导出网格、楼栋、监控点或地名地址库（道路、小区、兴趣点、门牌）。"""
    engine = make_engine(get_settings())
    if kind == Kind.grids and generation is None:
        with engine.connect() as connection:
            generation = generation_at(connection)
    with console.status(f"导出到 {out} …"):
        count = export_layer(
            engine,
            kind.value,
            out,
            format_name=format_name.value if format_name else None,
            level=level,
            generation=generation,
            crs=crs,
            encoding=encoding,
        )
    console.print(f"已导出 {count} 个要素到 {out}", highlight=False)
