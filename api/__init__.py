"""wangge service: settings, database layer, HTTP routes, auth and the `wangge` CLI."""
