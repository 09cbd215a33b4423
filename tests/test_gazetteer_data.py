"""The gazetteer's data: what the demo holds (roads, compounds, house numbers, POIs) and how it
agrees with the buildings, what the matcher loads, the stamp, aliases, and import/export."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely
from psycopg2 import sql
from pyogrio import raw
from sqlalchemy import create_engine, text

from api.db import migrate
from api.db.gazetteer import (
    delete_alias,
    gazetteer_stamp,
    list_aliases,
    load_gazetteer,
    place_exists,
    save_alias,
)
from api.db.generations import activate, create_generation
from api.demo.contents import gazetteer_of, street_of
from api.demo.gazetteer import replace_demo_gazetteer
from api.transfer.export import export_layer
from api.transfer.gazetteer import PLACE_KINDS, import_places
from api.transfer.read import read_layer
from api.transfer.report import ImportRejected
from spatial.demo_street import ROAD_NAMES, frontage, road_name, street_plans, unique_numbers
from tests.conftest import DEMO_SEED, _admin, _roles, as_role, create_database, drop_database

WANGGE = str(Path(sys.executable).with_name("wangge"))
ADDRESS = re.compile(r"^江苏省苏州市苏州工业园区湖东示范街道(.+?)(\d+)号(.+?)(\d+)幢$")
# The demo street of DEMO_SEED: 56 road lines under 32 names, 1,202 micro-grids all with
# buildings, 93 second gates, 45 POIs (conftest's seed; deterministic).
DEMO_COUNTS = {"road": 32, "compound": 1202, "house_number": 1295, "poi": 45}


def _count(connection, table: str) -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# --- the demo ------------------------------------------------------------------------------------


def test_demo_gazetteer_counts_and_kinds(demo_engine):
    with demo_engine.connect() as connection:
        assert {t: _count(connection, t) for t in DEMO_COUNTS} == DEMO_COUNTS
        assert _count(connection, "address_alias") == 0
        roads = connection.execute(text("SELECT name, kind, aliases FROM road")).all()
        categories = dict(
            connection.execute(text("SELECT category, count(*) FROM poi GROUP BY 1")).all()
        )
        suffixed = connection.execute(
            text("SELECT count(*) FROM house_number WHERE number !~ '^[0-9]+$'")
        ).scalar_one()
        nicknames = connection.execute(
            text("SELECT count(*) FROM compound WHERE cardinality(aliases) = 2")
        ).scalar_one()
    assert {r.name for r in roads} == set(ROAD_NAMES)
    assert Counter(r.kind for r in roads) == {"arterial": 4, "collector": 28}
    assert sum(1 for r in roads if r.aliases) == 32  # 路 → 街, 街/大道 → 路: no name clashes
    assert categories == {
        "school": 7,
        "kindergarten": 5,
        "market": 4,
        "hospital": 2,
        "clinic": 8,
        "park": 3,
        "supermarket": 5,
        "police": 1,
        "metro": 3,
        "bank": 2,
        "post": 1,
        "mall": 2,
        "culture": 1,
        "fuel": 1,
    }
    assert suffixed == DEMO_COUNTS["house_number"] - DEMO_COUNTS["compound"]  # 19-1, 19甲, 19附1
    assert nicknames == 182  # a 俗称 besides …小区


def test_each_compound_is_its_buildings_block(demo_engine):
    """A compound lies in exactly one micro-grid, holds the buildings that carry its name, and
    its main gate's plate carries the road and number of their addresses."""
    with demo_engine.connect() as connection:
        placed = connection.execute(
            text(
                "SELECT c.code, count(g.code) AS grids, min(g.code) AS grid FROM compound c "
                "JOIN grid g ON g.level = 'micro_grid' AND ST_Intersects(g.geom, c.geom) "
                "AND NOT ST_Touches(g.geom, c.geom) GROUP BY c.code"
            )
        ).all()
        buildings = connection.execute(
            text(
                "SELECT c.code, c.name, b.name AS building, b.address FROM compound c "
                "JOIN building b ON ST_Within(ST_PointOnSurface(b.geom), c.geom)"
            )
        ).all()
        plates = {
            r.compound_code: (r.road, r.number)
            for r in connection.execute(
                text(
                    "SELECT h.compound_code, h.road, h.number FROM house_number h "
                    "JOIN compound c ON c.code = h.compound_code AND ST_Within(h.geom, c.geom) "
                    "WHERE h.code LIKE '%-MP1'"
                )
            )
        }
        building_total = _count(connection, "building")
    assert len(placed) == DEMO_COUNTS["compound"]
    assert all(r.grids == 1 and r.code == f"{r.grid}-XQ" for r in placed)
    assert len(buildings) == building_total == 20557  # every building in its compound
    assert len(plates) == DEMO_COUNTS["compound"]  # every main plate inside its compound
    for row in buildings:
        road, number, compound, _ = ADDRESS.match(row.address).groups()
        assert compound == row.name and row.building.startswith(row.name)
        assert plates[row.code] == (road, number)


def test_house_numbers_are_unique_per_road(demo_engine):
    """As real 门牌 are: one plate per road + number, one compound per road + number in the
    addresses; the issue's examples keep theirs."""
    with demo_engine.connect() as connection:
        plates = connection.execute(text("SELECT road, number FROM house_number")).all()
        numbers = connection.execute(
            text(
                "SELECT substring(address from '街道(.+号)') AS plate, "
                "count(DISTINCT substring(code for 18)) AS compounds FROM building GROUP BY 1"
            )
        ).all()
        examples = dict(
            connection.execute(
                text(
                    "SELECT c.name, h.road || h.number || '号' FROM compound c "
                    "JOIN house_number h ON h.compound_code = c.code AND h.code LIKE '%-MP1' "
                    "WHERE c.name IN ('新翠居', '枫康庭', '锦玉苑')"
                )
            ).all()
        )
    assert len(plates) == len(set(plates)) == DEMO_COUNTS["house_number"]
    assert len(numbers) == DEMO_COUNTS["compound"] and {r.compounds for r in numbers} == {1}
    assert examples == {"新翠居": "淞江路19号", "枫康庭": "凤里街103号", "锦玉苑": "青丘街1号"}


def test_unique_numbers_keeps_first_claims():
    """The first claim of a road + number keeps it; a later one takes the next free number of
    the same parity above, never one that another block claims first."""
    claims = [("淞江路", 19), ("淞江路", 19), ("淞江路", 21), ("星海路", 19), ("淞江路", 19)]
    assert unique_numbers(claims) == [19, 23, 21, 19, 25]
    assert unique_numbers([("星海路", 2), ("星海路", 2)]) == [2, 4]  # even stays even
    street = street_of(DEMO_SEED, street_plans(1)[0])[0]
    tree = shapely.STRtree(street.roads)
    projected = {b: frontage(street.blocks[b], street.roads, tree) for b in street.frontages}
    renumbered = [b for b, claim in projected.items() if street.frontages[b] != claim]
    shared = Counter((road_name(r), n) for r, n in projected.values())
    assert len(renumbered) == sum(n - 1 for n in shared.values()) == 338
    assert all(street.frontages[b][0] == projected[b][0] for b in renumbered)  # same road


def test_pois_and_plates_lie_inside_blocks(demo_engine):
    with demo_engine.connect() as connection:
        outside = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM poi p WHERE NOT EXISTS (SELECT 1 FROM compound c "
                "WHERE ST_Within(p.geom, c.geom))), (SELECT count(*) FROM house_number h "
                "JOIN compound c ON c.code = h.compound_code WHERE NOT ST_Within(h.geom, c.geom))"
            )
        ).one()
        names = connection.execute(
            text("SELECT name, aliases FROM poi UNION ALL SELECT name, aliases FROM compound")
        ).all()
    assert tuple(outside) == (0, 0)
    every = [n for r in names for n in (r.name, *r.aliases)]
    assert len(every) == len(set(every))  # no wording names two places
    assert ("星海小学", ["星海实验小学"]) in [(r.name, r.aliases) for r in names]


# --- what the matcher loads ----------------------------------------------------------------------


def test_load_gazetteer(demo_engine):
    with demo_engine.connect() as connection:
        rows = load_gazetteer(connection)
    assert len(rows.buildings.codes) == len(rows.buildings.lon) == 20557
    assert rows.buildings.names[0] and rows.buildings.addresses[0].startswith("江苏省苏州市")
    counts = (len(rows.roads), len(rows.compounds), len(rows.house_numbers), len(rows.pois))
    assert counts == tuple(DEMO_COUNTS.values())
    assert Counter(a.level for a in rows.areas) == {"street": 1, "community": 8}
    assert {a.name for a in rows.areas if a.level == "street"} == {"湖东示范街道"}
    assert all(r.geom.geom_type == "MultiLineString" for r in rows.roads)
    assert all(c.geom.geom_type == "MultiPolygon" and c.geom.is_valid for c in rows.compounds)
    compound = next(c for c in rows.compounds if c.aliases[1:])
    assert isinstance(compound.aliases, tuple) and compound.aliases[0] == compound.name + "小区"
    assert rows.aliases == []
    first = rows.buildings
    assert shapely.contains_xy(
        shapely.box(120.70, 31.28, 120.78, 31.33), first.lon, first.lat
    ).all()


def test_stamp_changes_with_every_source(engine):
    def stamp():
        with engine.connect() as connection:
            return gazetteer_stamp(connection)

    start = stamp()
    assert start == stamp() and len(start) == 7 and start[0] == 1
    writes = [
        "UPDATE poi SET name = name || '（新）' WHERE code = '320571005-P001'",
        "UPDATE road SET aliases = aliases || '{旧星海路}' WHERE name = '星海路'",
        "DELETE FROM house_number WHERE code LIKE '%-MP2' AND number LIKE '%甲'",
        "UPDATE compound SET kind = 'office' WHERE code = '320571005001001001-XQ'",
        "UPDATE building SET address = NULL WHERE code = '320571005001001001B01'",
    ]
    seen = [start]
    for statement in writes:
        with engine.begin() as connection:
            connection.execute(text(statement))
        seen.append(stamp())
    with engine.begin() as connection:
        save_alias(
            connection,
            text="星海小学门口",
            normalised="星海小学门口",
            target_kind="poi",
            target_code="320571005-P001",
            event_id=None,
            actor="tests",
        )
    seen.append(stamp())
    with engine.begin() as connection:
        generation = create_generation(connection, "tests", "tests")
        activate(connection, generation, "tests")
    seen.append(stamp())
    assert len(set(seen)) == len(writes) + 3  # every write changed it
    assert seen[-1][0] == generation
    with engine.begin() as connection:  # a transaction that writes nothing changes nothing
        connection.execute(text("UPDATE poi SET name = name WHERE false"))
    assert stamp() == seen[-1]


# --- aliases -------------------------------------------------------------------------------------


def _teach(connection, wording: str, kind: str, code: str, event_id: int | None = None) -> dict:
    return save_alias(
        connection,
        text=wording,
        normalised=wording.replace(" ", ""),
        target_kind=kind,
        target_code=code,
        event_id=event_id,
        actor="dispatcher-1",
    )


def test_aliases_saved_listed_and_deleted(engine):
    with engine.begin() as connection:
        first = _teach(connection, "景玉府 九幢", "compound", "320571005001001001-XQ", 7)
        again = _teach(connection, "景玉府九幢", "compound", "320571005001001001-XQ")
        taken = _teach(connection, "景玉府九幢", "poi", "320571005-P001")
        second = _teach(connection, "星海路口", "road", "320571005-R02")
    assert first["created"] and not again["created"] and not taken["created"]
    assert again["id"] == taken["id"] == first["id"]
    assert (taken["target_kind"], taken["target_code"]) == ("compound", "320571005001001001-XQ")
    assert first["text"] == "景玉府 九幢" and first["normalised"] == "景玉府九幢"
    assert (first["event_id"], first["created_by"]) == (7, "dispatcher-1")
    with engine.begin() as connection:
        listed = list_aliases(connection, 10, 0)
        paged = list_aliases(connection, 1, 1)
        loaded = load_gazetteer(connection).aliases
    assert [a["id"] for a in listed] == [second["id"], first["id"]]  # newest first
    assert "created" not in listed[0] and [a["id"] for a in paged] == [first["id"]]
    assert [(a.normalised, a.target_kind) for a in loaded] == [
        ("景玉府九幢", "compound"),
        ("星海路口", "road"),
    ]
    with engine.begin() as connection:
        deleted = delete_alias(connection, first["id"])
        assert delete_alias(connection, first["id"]) is None
        assert len(list_aliases(connection, 10, 0)) == 1
    assert deleted is not None and deleted["normalised"] == "景玉府九幢"
    with engine.begin() as connection, pytest.raises(ValueError, match="grid"):
        _teach(connection, "某处", "grid", "320571005001")


def test_place_exists(demo_engine):
    with demo_engine.connect() as connection:
        crossing = connection.execute(
            text(
                "SELECT a.code || '+' || b.code FROM road a JOIN road b ON a.code < b.code "
                "AND ST_Intersects(a.geom, b.geom) ORDER BY 1 LIMIT 1"
            )
        ).scalar_one()
        apart = connection.execute(
            text(
                "SELECT a.code || '+' || b.code FROM road a JOIN road b ON a.code < b.code "
                "AND NOT ST_Intersects(a.geom, b.geom) ORDER BY 1 LIMIT 1"
            )
        ).scalar_one()
        found = {
            (kind, code): place_exists(connection, kind, code)
            for kind, code in [
                ("building", "320571005001001001B01"),
                ("compound", "320571005001001001-XQ"),
                ("house_number", "320571005001001001-MP1"),
                ("road", "320571005-R01"),
                ("poi", "320571005-P045"),
                ("intersection", crossing),
                ("poi", "320571005-P046"),
                ("building", "320571005001001001-XQ"),
                ("intersection", apart),
                ("intersection", "320571005-R01+320571005-R01"),
                ("intersection", "320571005-R01"),
                ("grid", "320571005001"),
            ]
        }
    assert list(found.values()) == [True] * 6 + [False] * 6


# --- import and export ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def empty_url(admin_url):
    """A migrated database with nothing in it (no grids, no gazetteer)."""
    name = f"wangge_test_gaz_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name)
    roles = _roles()
    if roles is not None:
        _admin(url, sql.SQL("CREATE EXTENSION IF NOT EXISTS postgis"))
        _admin(url, sql.SQL("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        migrate.upgrade(as_role(url, roles[0]))
        url = as_role(url, roles[0])
    else:
        migrate.upgrade(url)
    yield url
    drop_database(admin_url, name)


def _places(engine, table: str) -> dict[str, tuple]:
    columns = {
        "road": "name, aliases, kind",
        "compound": "name, aliases, kind",
        "poi": "name, aliases, category",
        "house_number": "road, number, compound_code",
    }[table]
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT code, {columns}, ST_AsBinary(geom) AS wkb FROM {table}")
        ).all()
    return {r[0]: (*r[1:-1], shapely.from_wkb(bytes(r.wkb))) for r in rows}


def _same(left: dict, right: dict) -> bool:
    return left.keys() == right.keys() and all(
        left[k][:-1] == right[k][:-1] and shapely.equals_exact(left[k][-1], right[k][-1], 1e-7)
        for k in left
    )


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".csv", ".kml", ".geojson"])
def test_round_trip_into_an_empty_database(demo_engine, empty_url, tmp_path, suffix):
    target = create_engine(empty_url)
    try:
        with target.begin() as connection:
            connection.execute(text("TRUNCATE road, compound, poi, house_number"))
        for kind, spec in PLACE_KINDS.items():
            path = tmp_path / f"{kind}{suffix}"
            written = export_layer(demo_engine, kind, path)
            assert written == DEMO_COUNTS[spec.table]
            crs = "EPSG:4326" if suffix == ".csv" else None  # a CSV declares none
            report = import_places(target, read_layer(path), kind, crs=crs)
            assert (report.created, report.updated, report.errors) == (written, 0, [])
            assert "还没有生效的网格版本，未检查地点是否在辖区范围内" in report.notes
            again = import_places(target, read_layer(path), kind, crs=crs)
            assert (again.created, again.updated, again.unchanged) == (0, 0, written)
            assert _same(_places(demo_engine, spec.table), _places(target, spec.table))
    finally:
        target.dispose()


def test_cli_export_and_import(database_url, empty_url, tmp_path):
    out = tmp_path / "pois.geojson"

    def wangge(*args: str, url: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "WANGGE_DATABASE_URL": url}
        return subprocess.run(
            [WANGGE, *args], capture_output=True, text=True, env=env, timeout=300, check=False
        )

    empty = create_engine(empty_url)
    with empty.begin() as connection:
        connection.execute(text("TRUNCATE poi"))
    empty.dispose()
    exported = wangge("export", "pois", str(out), url=database_url)
    assert exported.returncode == 0, exported.stderr
    assert "已导出 45 个要素" in exported.stdout
    feature = json.loads(out.read_text())["features"][0]
    assert feature["properties"]["aliases"] == "星海实验小学"
    assert feature["geometry"]["type"] == "Point"
    imported = wangge("import", "pois", str(out), "--json", url=empty_url)
    assert imported.returncode == 0, imported.stderr
    body = json.loads(imported.stdout)
    assert (body["created"], body["crs"], body["errors"]) == (45, "EPSG:4326", [])


def _write(path: Path, geometries: list, fields: dict[str, list], **options) -> Path:
    raw.write(
        path,
        shapely.to_wkb(np.array(geometries, dtype=object)),
        [np.array(v, dtype=object) for v in fields.values()],
        list(fields),
        crs=options.pop("crs", "EPSG:4326"),
        geometry_type=options.pop("geometry_type", "Unknown"),
        **options,
    )
    return path


def _rejected(engine, path: Path, kind: str) -> list[tuple]:
    before = {t: _places(engine, t).keys() for t in ("road", "poi", "house_number")}
    with pytest.raises(ImportRejected) as caught:
        import_places(engine, read_layer(path), kind)
    assert {t: _places(engine, t).keys() for t in before} == before  # nothing written
    assert caught.value.where == path.name
    return [(e.row, e.field, e.message) for e in caught.value.report.errors]


def test_bad_files_rejected_naming_row_and_field(engine, tmp_path):
    line = shapely.LineString([(120.73, 31.30), (120.74, 31.30)])
    roads = _write(
        tmp_path / "roads.geojson",
        [line, shapely.Point(120.73, 31.30), line, shapely.LineString([(1, 1), (1, 1)])],
        {
            "code": ["R1", "R2", "R1", "R4"],
            "name": ["新路", "点路", "重复", "零长"],
            "aliases": ["甲|乙", None, None, "x" * 101],
        },
    )
    found = _rejected(engine, roads, "roads")
    assert [(row, field) for row, field, _ in found] == [
        (4, "aliases"),
        (2, "geometry"),
        (4, "geometry"),
        (3, "code"),
    ]
    assert "实为 Point" in found[1][2] and "长度为 0" in found[2][2]

    plates = tmp_path / "门牌.csv"
    plates.write_text(
        "编码,路名,门牌号,lon,lat\nH1,星海路,１９号,120.73,31.30\nH2,星海路,甲,120.73,31.30\n"
        "H3,,21,120.73,31.30\nH4,星海路,23,31.30,120.73\n",
        encoding="utf-8",
    )
    found = _rejected(engine, plates, "house-numbers")
    assert [(row, field) for row, field, _ in found] == [
        (2, "门牌号"),  # 甲: not a number…
        (2, "门牌号"),  # …so the required number is missing
        (3, "路名"),
        (None, None),  # a CSV declares no CRS (the swapped row 4 is checked once it has one)
    ]
    assert "数字开头" in found[0][2] and "不能为空" in found[2][2] and "--crs" in found[3][2]

    nameless = _write(tmp_path / "pois.gpkg", [shapely.Point(120.73, 31.30)], {"类别": ["school"]})
    [(row, field, message)] = _rejected(engine, nameless, "pois")
    assert (row, field) == (None, "name") and "找不到 name 字段" in message and "类别" in message


def test_house_numbers_normalised_and_upserted(engine, tmp_path):
    plates = tmp_path / "plates.csv"
    plates.write_text(
        "code,road,number,compound_code,lon,lat,备注\nH1,星海路,１９号,,120.73,31.30,东门\n"
        "H2,星海路,19-1号,320571005001001001-XQ,120.7301,31.30,\n"
        "H3,星海路,19甲,XQ-404,120.7302,31.30,\n",
        encoding="utf-8",
    )
    report = import_places(engine, read_layer(plates), "house-numbers", crs="EPSG:4326")
    assert (report.created, report.errors) == (3, [])
    # No free attributes: said, not lost silently; an unknown compound is said, not refused.
    assert any("备注" in note for note in report.notes)
    assert "1 个小区编码在小区表中还没有：XQ-404" in report.notes
    stored = _places(engine, "house_number")
    assert [stored[c][1] for c in ("H1", "H2", "H3")] == ["19", "19-1", "19甲"]
    plates.write_text(
        "code,road,number,compound_code,lon,lat\nH1,星海路,19,,120.73,31.30\n"
        "H2,星海路,19之一,320571005001001001-XQ,120.7301,31.30\n",
        encoding="utf-8",
    )
    report = import_places(engine, read_layer(plates), "house-numbers", crs="EPSG:4326")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    assert _places(engine, "house_number")["H2"][1] == "19之一"


def test_replace_demo_gazetteer_keeps_aliases(engine):
    with engine.begin() as connection:
        _teach(connection, "星海小学门口", "poi", "320571005-P001")
        connection.execute(text("TRUNCATE road, compound, poi, house_number"))
        # A database loaded before house numbers were unique per road: its address is renewed.
        connection.execute(
            text(
                "UPDATE building SET address = replace(address, '凤里街103号', '凤里街109号') "
                "WHERE code LIKE '320571005008004006B%'"
            )
        )
        renewed = _count(connection, "building WHERE address LIKE '%凤里街109号枫康庭%'")
    written = replace_demo_gazetteer(engine, DEMO_SEED)
    assert written == {**DEMO_COUNTS, "building_address": renewed} and renewed > 0
    with engine.connect() as connection:
        assert {t: _count(connection, t) for t in DEMO_COUNTS} == DEMO_COUNTS
        assert _count(connection, "address_alias") == 1
        assert _count(connection, "building WHERE address LIKE '%凤里街103号枫康庭%'") == renewed
        assert (
            connection.execute(
                text("SELECT count(*) FROM audit_log WHERE action = 'demo.gazetteer'")
            ).scalar_one()
            == 1
        )


def test_a_district_street_has_a_gazetteer_of_its_own():
    """The second street of `wangge demo load --streets 2`: the same kinds of places, codes of
    its own (no clash with the demo street's), its street's name in the street-wide POIs."""
    plans = street_plans(2)
    first, second = (gazetteer_of(DEMO_SEED, plan, street_of(DEMO_SEED, plan)[0]) for plan in plans)
    codes = [
        {
            row["code"]
            for kind in ("roads", "compounds", "house_numbers", "pois")
            for row in getattr(g, kind)
        }
        for g in (first, second)
    ]
    assert len(first.pois) == len(second.pois) == 45 and len(second.roads) == 32
    assert len(second.compounds) == 1202 and codes[0].isdisjoint(codes[1])
    assert all(code.startswith("320571006") for code in codes[1])
    assert {"金鸡湖派出所", "金鸡湖人民医院"} <= {p["name"] for p in second.pois}
    outline = shapely.union_all(
        [g.geom for g in street_of(DEMO_SEED, plans[1])[0].grids if g.level == "street"]
    )
    assert all(outline.contains(c["geom"]) for c in second.compounds)


def test_demo_refuses_a_database_holding_a_gazetteer(empty_url):
    """`wangge demo load` without --reset mixes with nothing: imported places count as data."""
    from api.demo import DatabaseNotEmpty, load_demo

    target = create_engine(empty_url)
    try:
        with target.begin() as connection:
            connection.execute(text("TRUNCATE road, compound, poi, house_number"))
            connection.execute(
                text(
                    "INSERT INTO poi (code, name, geom) VALUES ('P1', '星海小学', "
                    "ST_SetSRID(ST_MakePoint(120.73, 31.30), 4326))"
                )
            )
        with pytest.raises(DatabaseNotEmpty, match="0 grid rows and 1 gazetteer rows"):
            load_demo(target, DEMO_SEED)
        with target.connect() as connection:
            assert _count(connection, "grid") == 0 and _count(connection, "poi") == 1
    finally:
        target.dispose()


# --- geometry GEOS cannot build (a line of one point) ---------------------------------------------


def _feature_collection(path: Path, features: list[tuple[dict, dict]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": p, "geometry": g} for p, g in features
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return path


ONE_POINT_LINE = {"type": "LineString", "coordinates": [[120.73, 31.30]]}
ONE_POINT_RING = {"type": "Polygon", "coordinates": [[[120.73, 31.30]]]}


def test_one_point_line_refused_naming_row_and_field(engine, client, tokens, tmp_path):
    """Review finding 9: a road whose line has a single point was a 500 (GEOS refuses to
    build it); now every import kind says which feature, in field geometry, and writes nothing."""
    good = {"type": "LineString", "coordinates": [[120.73, 31.30], [120.74, 31.30]]}
    roads = _feature_collection(
        tmp_path / "roads.geojson",
        [
            ({"code": "RV-R1", "name": "审查一路"}, good),
            ({"code": "RV-R2", "name": "审查二路"}, ONE_POINT_LINE),
            (
                {"code": "RV-R3", "name": "审查三路"},
                {"type": "MultiLineString", "coordinates": [[[120.73, 31.31]]]},
            ),
        ],
    )
    assert _rejected(engine, roads, "roads") == [
        (2, "geometry", "线只有一个点（线至少需要 2 个点）"),
        (3, "geometry", "线只有一个点（线至少需要 2 个点）"),
    ]
    answer = client.post(
        "/api/v1/import/roads",
        headers={"Authorization": f"Bearer {tokens['planner']}"},
        files={"file": ("roads.geojson", roads.read_bytes())},
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()["error"]
    assert body["code"] == "import_rejected" and body["where"] == "roads.geojson"
    assert [(d["row"], d["field"], d["code"]) for d in body["details"]] == [
        (2, "geometry", "RV-R2"),
        (3, "geometry", "RV-R3"),
    ]
    assert body["details"][0]["text"] == (
        "roads.geojson，第 2 个要素，编码 RV-R2，字段 geometry：线只有一个点（线至少需要 2 个点）"
    )
    assert "RV-R1" not in _places(engine, "road")


@pytest.mark.parametrize(
    ("kind", "data"),
    [("buildings", {}), ("grids", {"level": "micro_grid"}), ("compounds", {})],
)
def test_one_point_ring_refused_for_polygon_layers(engine, client, tokens, tmp_path, kind, data):
    """The same reader serves buildings, grids and compounds: a polygon whose ring has one
    point is named by feature and field, never a 500."""
    square = {
        "type": "Polygon",
        "coordinates": [
            [[120.730, 31.300], [120.731, 31.300], [120.731, 31.301], [120.730, 31.300]]
        ],
    }
    upload = _feature_collection(
        tmp_path / f"{kind}.geojson",
        [
            ({"code": "RV-1", "name": "甲"}, square),
            ({"code": "RV-2", "name": "乙"}, ONE_POINT_RING),
        ],
    )
    with engine.connect() as connection:
        before = _count(connection, "building") + _count(connection, "compound")
    answer = client.post(
        f"/api/v1/import/{kind}",
        headers={"Authorization": f"Bearer {tokens['planner']}"},
        data=data,
        files={"file": (upload.name, upload.read_bytes())},
    )
    assert answer.status_code == 422, answer.text
    details = answer.json()["error"]["details"]
    assert [(d["row"], d["message"]) for d in details if d["field"] == "geometry"] == [
        (2, "面的环只有一个点（环至少需要 4 个点，首尾相同）")
    ]
    assert all(d["row"] is not None for d in details)  # (grids: codes and parents said too)
    with engine.connect() as connection:
        assert _count(connection, "building") + _count(connection, "compound") == before


# --- review finding 11: rows named, places far away refused, namesakes reported ----------------


def _pois_file(path: Path, rows: list[tuple[str, str, float, float]]) -> Path:
    point = {"type": "Point"}
    return _feature_collection(
        path,
        [({"code": c, "name": n}, point | {"coordinates": [x, y]}) for c, n, x, y in rows],
    )


def test_a_bad_row_among_good_ones_is_named(engine, tmp_path):
    """One projected (or mistyped) point among good rows: that row, not the whole file."""
    pois = _pois_file(
        tmp_path / "pois.geojson",
        [("Q1", "审查小学", 120.735, 31.305), ("Q2", "审查中学", 1207330, 313000)],
    )
    [(row, field, message)] = _rejected(engine, pois, "pois")
    assert (row, field) == (2, "geometry")
    assert message.startswith("坐标超出经纬度范围（x 1.20733e+06，y 313000），其余要素都在范围内")
    projected = _pois_file(tmp_path / "all.geojson", [("Q1", "审查小学", 1207330, 313000)])
    [(row, field, message)] = _rejected(engine, projected, "pois")
    assert row is None and "EPSG:4549" in message  # the whole file: said once, with the hint


def test_places_far_outside_the_grids_are_refused(engine, client, tokens, tmp_path):
    """A longitude sign typo (−120.733: California) or a point 8 km east of the street is refused by row;
    2 km outside the street is accepted (a road or a school just over the boundary)."""
    pois = _pois_file(
        tmp_path / "pois.geojson",
        [
            ("Q1", "审查小学", 120.735, 31.305),
            ("Q2", "审查中学", -120.733, 31.305),
            ("Q3", "审查幼儿园", 120.84, 31.305),
        ],
    )
    found = _rejected(engine, pois, "pois")
    assert [(r, f) for r, f, _ in found] == [(2, "geometry"), (3, "geometry")]
    assert found[0][2].startswith("兴趣点位于当前网格范围之外约 112")  # the short way round
    assert (
        found[1][2].startswith("兴趣点位于当前网格范围之外约 8.0 公里")
        and "经度正负号" in found[1][2]
    )
    answer = client.post(
        "/api/v1/import/pois",
        headers={"Authorization": f"Bearer {tokens['planner']}"},
        data={"crs": "EPSG:4326"},
        files={"file": ("pois.geojson", pois.read_bytes())},
    )
    assert answer.status_code == 422 and "Q2" not in _places(engine, "poi")
    assert [d["row"] for d in answer.json()["error"]["details"]] == [2, 3]
    near = _pois_file(tmp_path / "near.geojson", [("Q4", "审查小学", 120.775, 31.305)])
    report = import_places(engine, read_layer(near), "pois", crs="EPSG:4326")
    assert (report.created, report.errors) == (1, [])


def test_namesakes_are_reported_not_refused(engine, tmp_path):
    """Names said twice in the file, or by a stored place of another code, are imported and
    reported (the matcher then offers candidates)."""
    pois = _pois_file(
        tmp_path / "pois.geojson",
        [
            ("Q1", "审查小学", 120.735, 31.305),
            ("Q2", "审查小学", 120.736, 31.305),
            ("Q3", "星海实验小学", 120.737, 31.305),  # the alias of the demo's 星海小学
        ],
    )
    report = import_places(engine, read_layer(pois), "pois", crs="EPSG:4326")
    assert (report.created, report.errors) == (3, [])
    assert (
        "文件中有兴趣点名称重复（已导入，匹配时将给出候选而不确定）：审查小学（第 1、2 个要素）"
        in report.notes
    )
    [stored] = [n for n in report.notes if n.startswith("与已有兴趣点同名")]
    assert "星海实验小学（第 3 个要素，已有编码 320571005-P" in stored
    again = import_places(engine, read_layer(pois), "pois", crs="EPSG:4326")
    assert again.unchanged == 3 and not any(
        n.startswith("与已有") and "Q" in n for n in again.notes
    )
    plates = tmp_path / "plates.csv"
    plates.write_text(
        "code,road,number,lon,lat\nH1,淞江路,19,120.735,31.305\nH2,审查路,5号,120.735,31.305\n"
        "H3,审查路,5,120.736,31.305\n",
        encoding="utf-8",
    )
    report = import_places(engine, read_layer(plates), "house-numbers", crs="EPSG:4326")
    assert report.created == 3
    assert "门牌名称重复" in " ".join(report.notes) and "审查路5号（第 2、3 个要素）" in " ".join(
        report.notes
    )
    assert "淞江路19号（第 1 个要素，已有编码 320571005004006015-MP1）" in " ".join(report.notes)
