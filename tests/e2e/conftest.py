"""Fixtures shared by the end-to-end tests: a served sample node (tests/e2e/test_cli.py)."""

from tests.e2e.test_cli import sample_node  # noqa: F401  (the fixture, for every e2e module)
