"""OGC API Features (read): collections, CRS, CQL2 filters, GeoJSON and HTML items."""
