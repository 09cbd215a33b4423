"""Auto-suggest a community's grids (300–500 households, contiguous, along blocks) as a new draft."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, Engine

from api.db.buildings import footprints_within, households_at
from api.drafts.publish import start_draft
from api.drafts.recode import keep_code_rule
from api.drafts.stats import grid_stats, next_codes
from api.drafts.versions import draft_row, load_edit, save_edit
from api.errors import InvalidInput, NotFound
from spatial.editing import HierarchyEdit
from spatial.partition import building_blocks, partition


def _households(connection: Connection, blocks: np.ndarray) -> np.ndarray:
    """Households of the buildings whose interior point lies in each block."""
    rows = households_at(connection, shapely.union_all(blocks).envelope)
    counts = np.zeros(len(blocks), dtype=np.int64)
    if not rows:
        return counts
    points = shapely.from_wkb([point for point, _ in rows])
    point, block = shapely.STRtree(blocks).query(points, predicate="within")
    # each building counts once, in the first block that holds it
    _, first = np.unique(point, return_index=True)
    np.add.at(counts, block[first], np.array([rows[i][1] for i in point[first]], dtype=np.int64))
    return counts


def _blocks(
    connection: Connection, edit: HierarchyEdit, community: str
) -> tuple[np.ndarray, list[list[str]]]:
    """The community's micro-grids (or, without them, one Voronoi cell per building)."""
    micro = [m for grid in edit.children(community) for m in edit.children(grid)]
    if micro:
        return np.array([edit.rows[m].geom for m in micro], dtype=object), [[m] for m in micro]
    area = edit.rows[community].geom
    footprints = footprints_within(connection, area)
    buildings = np.array([shapely.from_wkb(b) for b in footprints], dtype=object)
    if len(buildings) == 0:
        raise InvalidInput(
            f"社区 {community} 内没有楼栋，无从划分", code="no_buildings", where="body.community"
        )
    return building_blocks(area, buildings), [[] for _ in buildings]


def suggest_draft(
    engine: Engine, community: str, name: str, bounds: tuple[int, int], seed: int, actor: str
) -> dict[str, Any]:
    """A new draft in which the community's grids are replaced by a proposed partition."""
    with engine.begin() as connection:
        draft = start_draft(connection, name, actor, "suggest")
        draft_id, generation = draft.id, draft.generation_id
        edit = load_edit(connection, generation, None, [community])  # its extent, every level
        if community not in edit.rows:
            raise NotFound(
                f"没有编码为 {community} 的社区", code="grid_not_found", where="body.community"
            )
        blocks, members = _blocks(connection, edit, community)
        households = _households(connection, blocks)
        result = partition(blocks, households, bounds, seed)  # PartitionError: api/errors.py
        count = len(result.households)
        template = edit.children(community)
        codes = next_codes(
            connection, generation, community, template[0] if template else community, count
        )
        groups = []
        for number, code in enumerate(codes):
            chosen = np.flatnonzero(result.labels == number)
            outline = shapely.coverage_union_all(blocks[chosen])
            member_codes = [m for i in chosen for m in members[i]]
            groups.append(
                (
                    code,
                    f"{edit.rows[community].name}第{number + 1}网格",
                    result.households[number],
                    member_codes,
                    outline,
                )
            )
        edit.repartition(community, groups)
        edit.heal_vertices()
        # The micro-grids now sit under new grids: their codes follow (lineage 'recode').
        recoded = keep_code_rule(connection, generation, edit, False)
        save_edit(
            connection,
            draft,
            edit,
            "suggest",
            actor,
            {"community": community, "households_range": list(bounds), "seed": seed},
        )
        return {
            **draft_row(connection, draft_id),
            "proposal": {
                "community": community,
                "grids": count,
                "households": result.households,
                "blocks": len(blocks),
            },
            "touched": grid_stats(connection, generation, codes),
            "recoded": recoded,
        }
