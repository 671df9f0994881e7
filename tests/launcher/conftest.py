"""Fixtures shared with the node tests."""

from tests.agent.conftest import cluster  # noqa: F401  (a procorch with its node)
