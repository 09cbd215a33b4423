"""Lookup: the in-memory grid index per worker, address matching, result shaping."""
