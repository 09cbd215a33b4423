"""Database layer: models, engine, migrations and the queries routes and the CLI call."""
