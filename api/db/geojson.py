"""GeoJSON answers built from query rows: one feature, one page of a collection."""

from __future__ import annotations

from typing import Any

from api.db.filters import Page


def feature(
    geometry: Any, properties: dict[str, Any], feature_id: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "Feature", "geometry": geometry, "properties": properties}
    if feature_id is not None:
        item["id"] = feature_id
    return item


def collection(
    features: list[dict[str, Any]], page: Page, has_more: bool, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "offset": page.offset,
        "hasMore": has_more,
    }
    body.update(extra)
    return body
