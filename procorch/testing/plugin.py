"""pytest plugin (entry point ``procorch``): the ``procorch_cluster`` and
``procorch_cluster_sync`` fixtures.

::

    import pytest

    @pytest.mark.procorch(manifests=["deploy/"])
    async def test_api_answers(procorch_cluster):
        await procorch_cluster.wait_ready(timeout=60)
        url = await procorch_cluster.service_url("api")
        ...

    @pytest.mark.procorch(manifests=["deploy/"])
    def test_api_answers_synchronously(procorch_cluster_sync):
        procorch_cluster_sync.wait_ready(timeout=60)
        url = procorch_cluster_sync.service_url("api")
        ...

The marker's keyword arguments go to :func:`procorch.testing.cluster` or
:func:`~procorch.testing.cluster_sync` (``manifests``, ``data_dir``, ``service_cidr`` and
agent settings). ``procorch_cluster`` needs pytest-asyncio (without it the plugin offers only
the other); ``procorch_cluster_sync`` is a plain fixture, for any test, with or without
pytest-asyncio. Either way the cluster runs on its own thread and loop, so the test may block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from procorch.testing import Cluster, SyncCluster, cluster, cluster_sync


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "procorch(manifests=[...], **settings): the stack the procorch_cluster and "
        "procorch_cluster_sync fixtures start",
    )


def _marked(request: pytest.FixtureRequest) -> tuple[list[Any], dict[str, Any]]:
    marker = request.node.get_closest_marker("procorch")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    manifests = kwargs.pop("manifests", list(marker.args) if marker is not None else [])
    return list(manifests), kwargs


@pytest.fixture
def procorch_cluster_sync(request: pytest.FixtureRequest) -> Iterator[SyncCluster]:
    """A procorch with the marked manifests applied, with blocking methods; stopped after
    the test."""
    manifests, kwargs = _marked(request)
    with cluster_sync(manifests, **kwargs) as handle:
        yield handle


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the async fixture needs pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def procorch_cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
        """A procorch with the marked manifests applied; stopped after the test."""
        manifests, kwargs = _marked(request)
        async with cluster(manifests, **kwargs) as handle:
            yield handle
