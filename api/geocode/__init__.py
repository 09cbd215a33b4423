"""Address-only geocoding for hotline tickets: normalise and parse what callers say, match it
against the gazetteer (buildings, house numbers, compounds, intersections, POIs, roads,
communities) and answer with an honest precision."""
