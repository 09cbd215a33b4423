"""`wangge geocode`: assign every row of a large CSV/Parquet file to its grid, in bounded memory."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.db.engine import make_engine
from api.lookup.index_store import IndexStore
from api.lookup.points_io import iter_points
from api.lookup.service import DEFAULT_NEAR_M
from api.settings import get_settings
from api.transfer.cells import quoted_table
from spatial.crs import coordinate_problems, normalise_crs, to_wgs84_xy
from spatial.lookup import GridIndex

console = Console(soft_wrap=True)


@dataclass
class GeocodeSummary:
    rows: int = 0
    placed: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)


def _level_columns(index: GridIndex) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For every level: the code and name of that ancestor, per grid (empty when none)."""
    levels = sorted({(r.rank, r.level) for r in index.records})
    columns = {
        level: (
            np.full(len(index.records) + 1, "", dtype=object),
            np.full(len(index.records) + 1, "", dtype=object),
        )
        for _, level in levels
    }
    for position in range(len(index.records)):
        for record in index.path(position):
            codes, names = columns[record.level]
            codes[position], names[position] = record.code, record.name
    return columns  # position −1 (the extra last slot) stays empty for unplaced rows


def geocode_file(
    source: Path,
    out: Path,
    index: GridIndex,
    crs: str,
    *,
    lon_field: str | None = None,
    lat_field: str | None = None,
    near_m: float = DEFAULT_NEAR_M,
    progress=None,
) -> GeocodeSummary:
    spec = normalise_crs(crs)
    levels = _level_columns(index)
    codes = np.array([r.code for r in index.records] + [""], dtype=object)
    summary = GeocodeSummary()
    writer = None
    try:
        for chunk in iter_points(source, lon_field, lat_field):
            count = len(chunk.x)
            problems = coordinate_problems(chunk.x, chunk.y, spec)
            bad = np.array([p is not None for p in problems], dtype=bool)
            lon, lat = np.full(count, np.nan), np.full(count, np.nan)
            if (~bad).any():
                lon[~bad], lat[~bad] = to_wgs84_xy(chunk.x[~bad], chunk.y[~bad], spec)
            result = index.lookup(lon, lat, near_m=near_m)
            grid = result.grid
            reasons = np.array([p or "" for p in problems], dtype=object)
            outside = (grid < 0) & ~bad
            for i in np.flatnonzero(outside):
                nearest = int(result.nearest[i])
                reasons[i] = (
                    f"不在任何网格内（最近 {codes[nearest]}，{result.nearest_distance_m[i]:.1f} 米）"
                    if nearest >= 0
                    else "不在任何网格内"
                )
            columns = {
                "wgs84_lon": np.round(lon, 9),
                "wgs84_lat": np.round(lat, 9),
                "matched": grid >= 0,
            }
            for level, (level_codes, level_names) in levels.items():
                columns[f"{level}_code"] = level_codes[grid]
                columns[f"{level}_name"] = level_names[grid]
            columns.update(
                {
                    "on_boundary": result.on_boundary,
                    "distance_to_edge_m": np.round(result.edge_distance_m, 2),
                    "runner_up_code": codes[result.runner_up],
                    "runner_up_distance_m": np.round(result.runner_up_distance_m, 2),
                    "problem": reasons,
                }
            )
            # Re-geocoding an earlier output (e.g. after a publish) replaces its wg_ columns.
            table = chunk.table.drop_columns(
                [n for n in chunk.table.column_names if n.startswith("wg_")]
            )
            for name, values in columns.items():
                table = table.append_column(
                    f"wg_{name}", pa.array(values, from_pandas=True)
                )  # NaN → empty
            writer = writer or _writer(out, table.schema)
            if isinstance(writer, pq.ParquetWriter):
                writer.write_table(table)
            else:  # a spreadsheet would run `=…` in a name or an input column as a formula
                writer.write(quoted_table(table))
            summary.rows += count
            summary.placed += int((grid >= 0).sum())
            for i in np.flatnonzero(reasons != ""):
                summary.problems[str(reasons[i]).split("（")[0].split("：")[0]] += 1
                if len(summary.examples) < 20:
                    summary.examples.append((chunk.first_row + int(i), str(reasons[i])))
            if progress is not None:
                progress(count)
    finally:
        if writer is not None:
            writer.close()
    return summary


def _writer(out: Path, schema: pa.Schema):
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        return pq.ParquetWriter(out, schema)
    return pacsv.CSVWriter(out, schema)


def _count_rows(path: Path) -> int | None:
    if path.suffix.lower() == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    if path.suffix.lower() == ".csv":
        with path.open("rb") as handle:
            return max(
                sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b"")) - 1, 0
            )
    return None


def geocode_command(
    source: Annotated[Path, typer.Argument(help="输入文件：CSV（含经纬度列）、Parquet 或 GeoJSON")],
    crs: Annotated[str, typer.Option(help="坐标系：EPSG 代码、gcj02 或 bd09")],
    out: Annotated[Path, typer.Option("-o", "--out", help="输出文件（.csv 或 .parquet）")],
    lon_field: Annotated[str | None, typer.Option(help="经度列（默认自动识别）")] = None,
    lat_field: Annotated[str | None, typer.Option(help="纬度列（默认自动识别）")] = None,
    at: Annotated[datetime | None, typer.Option(help="按该时间生效的网格版本（默认当前）")] = None,
    near_m: Annotated[float, typer.Option(help="距边界多少米内报告次选网格")] = DEFAULT_NEAR_M,
) -> None:
    """批量落格：为每一行加上所在网格及其上级、边界距离、次选网格；无法落格的行注明原因。"""
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"输出文件应为 .csv 或 .parquet：{out}")
    store = IndexStore(make_engine(get_settings()))
    with console.status("载入网格索引 …"):
        store.refresh()
        index = store.at(at)
    total = _count_rows(source)
    columns = [TextColumn("落格"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("geocode", total=total)
        summary = geocode_file(
            source,
            out,
            index,
            crs,
            lon_field=lon_field,
            lat_field=lat_field,
            near_m=near_m,
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"{source.name}：{summary.rows} 行，已落格 {summary.placed} 行（第 {index.generation} 版网格），"
        f"结果写入 {out}",
        highlight=False,
    )
    if summary.problems:
        console.print(
            f"[yellow]{summary.rows - summary.placed} 行未能落格[/yellow]（原因见输出的 wg_problem 列）："
        )
        for reason, count in summary.problems.most_common():
            console.print(f"  {reason}：{count} 行", highlight=False)
        for row, reason in summary.examples[:10]:
            console.print(f"  例：第 {row} 行：{reason}", highlight=False)
