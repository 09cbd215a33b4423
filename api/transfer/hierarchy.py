"""The grid hierarchy an import must fit: one level at a time, each grid under a parent of the
level above (given, or inferred from the code prefix or the covering parent), codes by the level's
rule (`api.codes`), no code twice in one file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely

from api.codes import code_problem
from api.transfer.read import SourceLayer
from api.transfer.report import ImportIssue, ImportReport
from spatial.editing import GridRow


def level_above(levels: Mapping[str, Any], level: str) -> Any | None:
    """The grid_level row just above `level` (None for the top level)."""
    this_level = levels[level]
    return next(
        (
            lv
            for lv in levels.values()
            if lv.rank < this_level.rank
            and lv.rank == max(x.rank for x in levels.values() if x.rank < this_level.rank)
        ),
        None,
    )


def duplicate_codes(codes: list[str | None], report: ImportReport) -> None:
    """Every repeat of a code already seen earlier in the file is an error on its row."""
    first_row: dict[str, int] = {}
    for index, code in enumerate(codes):
        if code is None:
            continue
        if code in first_row:
            report.errors.append(
                ImportIssue(index + 1, "code", f"编码与第 {first_row[code]} 个要素重复", code)
            )
        else:
            first_row[code] = index + 1


def check_exported_level(source: SourceLayer, level: str, report: ImportReport) -> None:
    """A wangge export carries a `level` column: it must agree with --level, then it is dropped."""
    values = source.fields.pop("level", None)
    if values is None:
        return
    for index, value in enumerate(values):
        if value not in (None, level):
            report.errors.append(
                ImportIssue(
                    index + 1,
                    "level",
                    f"要素层级为 {value}，与导入层级 {level} 不符（可先按层级筛选）",
                )
            )


def grid_rows(
    rows: Sequence[dict[str, Any]],
    geometries: np.ndarray,
    level: str,
    this_level: Any,
    parent_level: Any | None,
    existing: Mapping[str, GridRow],
    report: ImportReport,
) -> list[GridRow]:
    """The file's rows as grids of `level`, each parent checked or inferred, each code checked."""
    parents = {
        c: g
        for c, g in existing.items()
        if parent_level is not None and g.level == parent_level.name
    }
    parent_tree = shapely.STRtree([g.geom for g in parents.values()]) if parents else None
    parent_codes = list(parents)
    result = []
    for index, (row, geom) in enumerate(zip(rows, geometries, strict=True)):
        code = row["code"]
        if code is None:
            continue
        parent = row["parent"]
        if parent_level is None:
            if parent:
                report.errors.append(
                    ImportIssue(index + 1, "parent", f"{level} 是最高层级，不应有上级", code)
                )
        else:
            parent = parent or _infer_parent(
                code, geom, parents, parent_tree, parent_codes, this_level
            )
            if parent is None:
                report.errors.append(
                    ImportIssue(
                        index + 1,
                        "parent",
                        f"找不到上级（{parent_level.name}）网格：请提供上级编码字段，或先导入上级网格",
                        code,
                    )
                )
            elif parent not in parents:
                report.errors.append(
                    ImportIssue(
                        index + 1,
                        "parent",
                        f"上级编码 {parent} 不是当前版本中的 {parent_level.name} 网格",
                        code,
                    )
                )

        problem = code_problem(code, parent if parent in parents else None, this_level)
        if problem:
            report.errors.append(ImportIssue(index + 1, "code", problem, code))
        result.append(
            GridRow(
                code,
                row["name"],
                level,
                row["kind"] or "other",
                parent,
                row["households"],
                row["population"],
                row["attributes"],
                geom,
            )
        )
    return result


def _infer_parent(
    code: str,
    geom: Any,
    parents: Mapping[str, GridRow],
    tree: shapely.STRtree | None,
    parent_codes: list[str],
    this_level: Any,
) -> str | None:
    """No parent column: the code prefix if it names a parent, else the parent covering the grid."""
    if this_level.code_extends_parent:
        for length in range(len(code) - 1, 0, -1):
            if code[:length] in parents:
                return str(code[:length])
    if tree is None or geom is None or shapely.is_empty(geom):
        return None
    hits = tree.query(shapely.point_on_surface(geom), predicate="within")
    return parent_codes[int(hits[0])] if len(hits) else None
