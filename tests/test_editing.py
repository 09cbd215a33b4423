"""Hierarchy edits in memory (spatial.editing) and the spanning-tree partition (spatial.partition)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from spatial.editing import EditError, GridRow, HierarchyEdit
from spatial.partition import PartitionError, adjacency, building_blocks, group_count, partition

RANKS = {"community": 1, "grid": 2, "micro_grid": 3}


def _square(x, y, size=1e-3):
    return shapely.box(x, y, x + size, y + size)


def _street():
    """One community of two grids side by side, each of four micro-grids (2×2)."""
    rows = {"C": GridRow("C", "社区", "community", geom=shapely.box(0, 0, 4e-3, 2e-3))}
    for index, x0 in enumerate((0.0, 2e-3)):
        code = f"G{index}"
        rows[code] = GridRow(
            code, code, "grid", parent_code="C", geom=shapely.box(x0, 0, x0 + 2e-3, 2e-3)
        )
        for i in range(2):
            for j in range(2):
                micro = f"{code}M{i}{j}"
                rows[micro] = GridRow(
                    micro,
                    micro,
                    "micro_grid",
                    parent_code=code,
                    geom=_square(x0 + i * 1e-3, j * 1e-3),
                )
    return HierarchyEdit(rows, RANKS)


def _assert_partition(edit, level, area):
    shapes = [r.geom for r in edit.rows.values() if r.level == level]
    assert sum(s.area for s in shapes) == pytest.approx(area, rel=1e-9)
    assert shapely.union_all(shapes).area == pytest.approx(area, rel=1e-9)
    assert all(e.is_empty for e in shapely.coverage_invalid_edges(np.array(shapes, dtype=object)))


def test_reshape_moves_the_shared_edge_for_both_grids_and_their_children():
    edit = _street()
    grown = shapely.box(0, 0, 2.5e-3, 2e-3)  # G0 takes a 0.5e-3 strip of G1
    edit.reshape("G0", grown)
    edit.heal_vertices()
    assert edit.rows["G0"].geom.equals(grown)
    assert edit.rows["G1"].geom.equals(shapely.box(2.5e-3, 0, 4e-3, 2e-3))
    for level in ("grid", "micro_grid"):
        _assert_partition(edit, level, 8e-6)
    # The strip's micro-grid shares went to G0's micro-grids that border them.
    assert edit.rows["G0M10"].geom.equals(shapely.box(1e-3, 0, 2.5e-3, 1e-3))
    assert edit.rows["G1M00"].geom.equals(shapely.box(2.5e-3, 0, 3e-3, 1e-3))
    assert set(edit.before) >= {"G0", "G1", "G0M10", "G0M11", "G1M00", "G1M01"}


def test_shrinking_gives_the_area_to_the_neighbour_and_outer_edges_refuse():
    edit = _street()
    edit.reshape("G1", shapely.box(2.5e-3, 0, 4e-3, 2e-3))
    assert edit.rows["G0"].geom.equals(shapely.box(0, 0, 2.5e-3, 2e-3))
    with pytest.raises(EditError) as refused:
        _street().reshape("G0", shapely.box(0, 0, 2e-3, 1.8e-3))  # pulls back from the street edge
    assert refused.value.code == "would_leave_gap"
    with pytest.raises(EditError) as outside:
        _street().reshape("G0", shapely.box(0, 0, 2e-3, 2.5e-3))
    assert outside.value.code == "outside_parent"


def test_split_between_children_and_merge_back():
    edit = _street()
    edit.split("G0", shapely.LineString([(1.1e-3, -1), (1.1e-3, 1)]), ["G2", "G3"])
    left, right = sorted(("G2", "G3"), key=lambda c: edit.rows[c].geom.bounds[0])
    assert edit.rows[left].geom.equals(shapely.box(0, 0, 1e-3, 2e-3))  # cut between micro-grids
    assert {edit.rows[m].parent_code for m in ("G0M00", "G0M01")} == {left}
    assert {edit.rows[m].parent_code for m in ("G0M10", "G0M11")} == {right}
    assert edit.lineage == [("G0", "G2", "split"), ("G0", "G3", "split")]
    edit.merge(["G2", "G3"], "G2")
    assert edit.rows["G2"].geom.equals(shapely.box(0, 0, 2e-3, 2e-3))
    assert "G3" not in edit.rows and edit.rows["G0M11"].parent_code == "G2"


def test_create_takes_area_and_delete_refuses_parents():
    edit = _street()
    new = GridRow(
        "G0M99",
        "新",
        "micro_grid",
        parent_code="G0",
        geom=shapely.box(0.5e-3, 0.5e-3, 1.5e-3, 1.5e-3),
    )
    edit.create(new)
    edit.heal_vertices()
    _assert_partition(edit, "micro_grid", 8e-6)
    assert edit.created == {"G0M99"}
    with pytest.raises(EditError) as refused:
        edit.delete("G0", with_children=False)
    assert refused.value.code == "has_children"
    assert edit.delete("G1", with_children=True)[0] == "G1"
    assert "G1M00" in edit.removed


def test_partition_keeps_groups_contiguous_and_within_bounds():
    blocks = np.array(
        [_square(i * 1e-3, j * 1e-3) for i in range(8) for j in range(6)], dtype=object
    )
    households = np.random.default_rng(1).integers(20, 60, len(blocks))
    result = partition(blocks, households, (300, 500), seed=3)
    assert len(result.households) == group_count(int(households.sum()), 300, 500)
    for group, total in enumerate(result.households):
        members = blocks[result.labels == group]
        assert 300 <= total <= 500
        assert shapely.union_all(members).geom_type == "Polygon"  # contiguous
    assert (
        partition(blocks, households, (300, 500), seed=3).labels.tolist() == result.labels.tolist()
    )
    with pytest.raises(PartitionError):
        partition(blocks, households, (5000, 6000))
    with pytest.raises(PartitionError):
        partition(blocks[:2], np.array([600, 10]), (300, 500))  # one block alone is too big
    assert len(adjacency(blocks)) == 7 * 6 + 8 * 5  # rook neighbours only, not corners


def test_building_blocks_tile_the_area_one_cell_per_building():
    area = shapely.box(0, 0, 1e-2, 1e-2)
    buildings = np.array(
        [_square(x, y, 1e-4) for x in (1e-3, 5e-3, 8e-3) for y in (2e-3, 7e-3)], dtype=object
    )
    cells = building_blocks(area, buildings)
    assert len(cells) == len(buildings)
    assert all(cell.covers(b) for cell, b in zip(cells, buildings, strict=True))
    assert shapely.union_all(cells).area == pytest.approx(area.area)


def test_recode_moves_children_and_keeps_what_undo_needs():
    edit = _street()
    edit.reshape("G0", shapely.box(0, 0, 3e-3, 2e-3))  # takes G1's left column whole
    assert edit.reparented() == ["G1M00", "G1M01"]  # carried whole, re-parented to G0
    edit.recode("G1M00", "G0M20")
    edit.recode("G0", "G9")  # a grid's new code: its children follow it
    assert edit.rows["G0M20"].parent_code == "G9"
    assert sorted(edit.children("G9")) == ["G0M00", "G0M01", "G0M10", "G0M11", "G0M20", "G1M01"]
    assert "G0" not in edit.rows and "G1M00" not in edit.rows
    assert edit.created == {"G9", "G0M20"} and edit.removed == {"G0", "G1M00"}
    assert edit.before["G1M00"].parent_code == "G1" and edit.before["G0M00"].parent_code == "G0"
    assert edit.lineage == [("G1M00", "G0M20", "recode"), ("G0", "G9", "recode")]
    # Coarsest first: the recoded grid, then every micro-grid whose parent changed.
    assert edit.reparented() == [
        "G9",
        "G0M00",
        "G0M01",
        "G0M10",
        "G0M11",
        "G0M20",
        "G1M01",
    ]
    with pytest.raises(EditError) as taken:
        edit.recode("G9", "G1")
    assert taken.value.code == "code_taken"
