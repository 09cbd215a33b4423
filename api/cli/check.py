"""`wangge check`: a coverage check from the command line, usable as a gate in scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import shapely
import typer
from rich.console import Console
from rich.table import Table

from api.coverage import KIND_LABELS, propose_fix_draft, run_check, store_check
from api.db.engine import make_engine
from api.db.generations import generation_at
from api.drafts.versions import draft_by_id
from api.settings import get_settings
from api.transfer.read import read_layer
from spatial.coverage import ERROR_KINDS, CheckOptions
from spatial.crs import WGS84, transform

console = Console(soft_wrap=True)


def _polygons(path: Path) -> np.ndarray:
    """Every geometry of a vector file, in WGS84."""
    source = read_layer(path)
    return transform(source.geometries, source.crs or WGS84, WGS84)


def check_command(
    level: Annotated[str | None, typer.Option(help="只检查下级为该层级的上下级关系")] = None,
    draft: Annotated[int | None, typer.Option(help="检查某个草稿（按草稿编号）")] = None,
    generation: Annotated[
        int | None, typer.Option(help="检查某个网格版本（默认当前生效版本）")
    ] = None,
    gap_width_m: Annotated[float, typer.Option(help="报告宽度不小于该值（米）的空隙")] = 0.2,
    min_gap_area_m2: Annotated[
        float, typer.Option(help="报告面积不小于该值（平方米）的空隙")
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON 报告")] = False,
    store: Annotated[bool, typer.Option(help="保存检查结果（可在 API 中查看）")] = True,
    fix: Annotated[bool, typer.Option("--fix", help="发现错误时生成修复草稿（不会启用）")] = False,
    allowed_gaps: Annotated[
        Path | None, typer.Option(help="允许的飞地/空缺（任意矢量文件，面）")
    ] = None,
    outline: Annotated[
        Path | None,
        typer.Option(help="已知外边界（任意矢量文件，面）：检查最高层级是否铺满、有无缺口"),
    ] = None,
) -> None:
    """覆盖检查：重叠、空隙、共用边、超出上级、楼栋、户数、人员、监控覆盖。发现错误时退出码为 1。"""
    engine = make_engine(get_settings())
    enclaves = list(_polygons(allowed_gaps)) if allowed_gaps is not None else []
    options = CheckOptions(
        level=level,
        gap_width_m=gap_width_m,
        min_gap_area_m2=min_gap_area_m2,
        allowed_gaps=enclaves,
        outline=shapely.union_all(_polygons(outline)) if outline is not None else None,
    )
    with engine.connect() as connection, console.status("检查中 …"):
        target = draft_by_id(connection, draft).generation_id if draft is not None else generation
        report = run_check(
            connection, target if target is not None else generation_at(connection), options
        )
    if store:
        report["id"] = store_check(engine, report, "cli")
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        table = Table(
            "检查项",
            "数量",
            "级别",
            title=f"第 {report['generation']} 版网格覆盖检查"
            + (f"（#{report['id']}）" if "id" in report else ""),
        )
        for kind, count in report["summary"]["by_kind"].items():
            severity = "错误" if kind in ERROR_KINDS else "提示"
            table.add_row(KIND_LABELS.get(kind, kind), str(count), severity if count else "")
        console.print(table)
        for kind in ERROR_KINDS:
            for finding in report[kind][:20]:
                console.print(
                    f"  [red]{KIND_LABELS[kind]}[/red] {finding['message']}", highlight=False
                )
        console.print(
            f"错误 {report['summary']['errors']} 个，提示 {report['summary']['warnings']} 个"
        )
    if report["summary"]["errors"]:
        if fix:
            proposal = propose_fix_draft(
                engine, report["generation"], level, max(gap_width_m, 1.0), "cli"
            )
            console.print(
                proposal["message"] + f"；用 `wangge check --draft {proposal['draft_id']}` 复查",
                highlight=False,
            )
        raise typer.Exit(1)
