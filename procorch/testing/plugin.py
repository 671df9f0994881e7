"""pytest plugin (entry point ``procorch``): the ``procorch_cluster`` fixture.

::

    import pytest

    @pytest.mark.procorch(manifests=["deploy/"])
    async def test_api_answers(procorch_cluster):
        await procorch_cluster.wait_ready(timeout=60)
        url = await procorch_cluster.service_url("api")
        ...

The marker's keyword arguments go to :func:`procorch.testing.cluster` (``manifests``,
``data_dir`` and agent settings). Needs pytest-asyncio; without it the plugin offers nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from procorch.testing import Cluster, cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "procorch(manifests=[...], **settings): the stack the procorch_cluster fixture starts",
    )


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def procorch_cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
        """A procorch with the marked manifests applied; stopped after the test."""
        marker = request.node.get_closest_marker("procorch")
        kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        manifests = kwargs.pop("manifests", list(marker.args) if marker is not None else [])
        async with cluster(manifests, **kwargs) as handle:
            yield handle
