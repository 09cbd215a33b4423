"""Baseline for benchmark (b): a per-request SQL lookup, the way MapIt answers point queries."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from api.db.engine import make_engine
from api.db.grids import grid_path
from api.settings import get_settings

app = FastAPI()
engine = make_engine(get_settings())


@app.get("/lookup")
def lookup(lon: float, lat: float) -> dict[str, Any]:
    with engine.connect() as connection:
        generation = connection.execute(
            text(
                "SELECT generation_id FROM generation_activation ORDER BY activated_at DESC, id DESC LIMIT 1"
            )
        ).scalar()
        row = connection.execute(
            text(
                "SELECT g.code FROM grid g JOIN grid_level l ON l.name = g.level "
                "WHERE ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
                "AND g.generation_low <= :g AND g.generation_high >= :g ORDER BY l.rank DESC, g.code LIMIT 1"
            ),
            {"lon": lon, "lat": lat, "g": generation},
        ).first()
        path = grid_path(connection, row[0], generation) if row else []
    return {"matched": row is not None, "path": path}
