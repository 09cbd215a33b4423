"""Helpers for tests/test_faults.py: a private PostgreSQL cluster, the service as a process,
and clients that retry."""
