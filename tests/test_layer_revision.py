"""The layers' revision counters (migration 0007): what the OGC pages and tiles of buildings,
monitoring points and events key their caches and ETags on. Bumped once per committing
transaction that wrote the layer, never by reads, never writable by the service role."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import pytest
import sqlalchemy
from sqlalchemy import create_engine, text

from tests.conftest import bearer


def _revision(engine, layer: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT revision FROM layer_revision WHERE layer = :l"), {"l": layer}
        ).scalar_one()


def test_one_bump_per_committed_transaction_whatever_it_wrote(engine):
    before = {
        layer: _revision(engine, layer) for layer in ("building", "event", "monitoring_point")
    }
    with engine.begin() as connection:  # many rows, several statements: one bump
        connection.execute(text("UPDATE building SET floors = floors WHERE id <= 500"))
        connection.execute(text("UPDATE building SET name = name WHERE id BETWEEN 501 AND 900"))
    assert _revision(engine, "building") == before["building"] + 1
    with engine.connect() as connection:  # a rolled-back write changes nothing
        with connection.begin() as transaction:
            connection.execute(text("UPDATE building SET floors = floors WHERE id = 1"))
            transaction.rollback()
        connection.execute(text("SELECT count(*) FROM building")).scalar()  # reads: nothing
    assert _revision(engine, "building") == before["building"] + 1
    assert _revision(engine, "event") == before["event"]
    assert _revision(engine, "monitoring_point") == before["monitoring_point"]
    with engine.begin() as connection:
        connection.execute(text("UPDATE event SET warning_level = warning_level WHERE id = 1"))
        connection.execute(text("DELETE FROM monitoring_point WHERE id = 1"))
    assert _revision(engine, "event") == before["event"] + 1
    assert _revision(engine, "monitoring_point") == before["monitoring_point"] + 1


def test_the_service_role_cannot_forge_a_revision(service_url):
    service = create_engine(service_url)
    try:
        with (
            pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"),
            service.begin() as connection,
        ):
            connection.execute(text("UPDATE layer_revision SET revision = 0"))
        with service.begin() as connection:  # yet its writes bump through the trigger
            before = connection.execute(
                text("SELECT revision FROM layer_revision WHERE layer = 'event'")
            ).scalar_one()
        with service.begin() as connection:
            connection.execute(text("UPDATE event SET description = description WHERE id = 2"))
        with service.connect() as connection:
            after = connection.execute(
                text("SELECT revision FROM layer_revision WHERE layer = 'event'")
            ).scalar_one()
        assert after == before + 1
    finally:
        service.dispose()


def test_a_transition_refreshes_the_event_page_and_tile(client, tokens, engine):
    """Cached event pages and tiles are never served after the event changed (the ETag differs,
    the new status is in the answer)."""
    dispatcher = bearer(tokens["dispatcher"])
    with engine.connect() as connection:
        event_id, version, lon, lat = connection.execute(
            text(
                "SELECT id, version, ST_X(geom), ST_Y(geom) FROM event WHERE status = 'reported' "
                "AND geom IS NOT NULL ORDER BY id LIMIT 1"
            )
        ).one()
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 16)
    tile_url = f"/tiles/events/{tile.z}/{tile.x}/{tile.y}.mvt"
    item_url = f"/ogc/collections/events/items/{event_id}"
    item, tile_before = client.get(item_url), client.get(tile_url)
    assert item.status_code == 200 and item.json()["properties"]["status"] == "reported"
    assert tile_before.status_code == 200
    for url, answer in ((item_url, item), (tile_url, tile_before)):
        assert client.get(url, headers={"If-None-Match": answer.headers["etag"]}).status_code == 304

    accepted = client.post(
        f"/api/v1/events/{event_id}/transitions",
        json={"action": "accept", "version": version},
        headers=dispatcher,
    )
    assert accepted.status_code == 200, accepted.text
    again = client.get(item_url, headers={"If-None-Match": item.headers["etag"]})
    assert again.status_code == 200 and again.json()["properties"]["status"] == "accepted"
    tile_after = client.get(tile_url, headers={"If-None-Match": tile_before.headers["etag"]})
    assert (
        tile_after.status_code == 200 and tile_after.headers["etag"] != tile_before.headers["etag"]
    )
    features = mapbox_vector_tile.decode(tile_after.content)["events"]["features"]
    statuses = {f["properties"]["status"] for f in features if f["properties"]["id"] == event_id}
    assert statuses == {"accepted"}
