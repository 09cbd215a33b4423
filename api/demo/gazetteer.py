"""Give an existing demo database its gazetteer without reloading it (`load_demo` writes one
anyway): for databases loaded before the gazetteer existed, such as a benchmark's district."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from api.db import audit, gazetteer_writes
from api.demo.contents import gazetteer_of, street_of
from api.demo.loader import write_gazetteer
from spatial.demo_street import street_plans


def replace_demo_gazetteer(
    engine: Engine,
    seed: int,
    streets: int = 1,
    *,
    actor: str = "demo",
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Replace the roads, compounds, house numbers and POIs with those of the demo of `seed`
    and `streets` (the same as `wangge demo load --streets N` writes; aliases are kept).
    Returns the rows written per table, and under "building_address" how many buildings'
    addresses changed: a database loaded before house numbers were unique per road gets the
    numbers its plates now carry. The streets' geometry is rebuilt, not read: the database
    must hold that demo for the gazetteer to agree with its buildings."""
    gazetteers = []
    addresses: list[tuple[str, str]] = []
    for plan in street_plans(streets):
        progress(f"生成地名地址库：{plan.name}")
        street, _ = street_of(seed, plan)
        gazetteers.append(gazetteer_of(seed, plan, street))
        addresses += [(b["code"], b["address"]) for b in street.buildings]
    with engine.begin() as connection:
        gazetteer_writes.empty_places(connection, aliases=False)
        written = write_gazetteer(connection, gazetteers)
        written["building_address"] = gazetteer_writes.set_building_addresses(connection, addresses)
        audit.record(
            connection, actor, "demo.gazetteer", "gazetteer", None, {"seed": seed, **written}
        )
    with engine.begin() as connection:
        gazetteer_writes.analyze_places(connection)
    return written
