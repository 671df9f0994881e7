"""procorch for test suites: a whole stack of services up for the length of a test.

::

    from procorch.testing import cluster, cluster_sync

    async def test_checkout_calls_the_api():
        async with cluster(["deploy/"]) as c:
            await c.wait_ready(timeout=60)
            url = await c.service_url("api")
            assert urllib.request.urlopen(url + "/health").status == 200

    def test_checkout_calls_the_api_synchronously():
        with cluster_sync(["deploy/"]) as c:
            c.wait_ready(timeout=60)
            assert requests.get(c.service_url("api") + "/health").status_code == 200

:func:`cluster` and :func:`cluster_sync` start an isolated procorch - API server on a free
port, its own temporary data dir (unless ``data_dir`` is given), its own node and node
supervisor, Service proxy and Ingress router - apply the manifests (files or directories, all
or nothing; a refused manifest raises :class:`~procorch.client.apply.ApplyError` from the
``with``), and give a handle: :class:`Cluster` (coroutines) or :class:`SyncCluster` (blocking
calls).

Concurrency contract: the procorch runs on a thread of its own with its own event loop
(:mod:`procorch.testing.runner`), never on the test's. So the test's code may block - ``urllib``,
``requests``, ``subprocess.run(["kubectl", ...])``, ``time.sleep`` - in an async test as in a
plain one, and the cluster goes on answering. A :class:`Cluster`'s coroutines run on the test's
loop (its ``client`` is an HTTP client with admin rights); a :class:`SyncCluster`'s methods
block the calling thread (see :mod:`procorch.testing.handles`).

Leaving the block stops every pod (grace periods honoured) and everything else, and joins the
cluster's thread; that also happens when the test fails, is cancelled or is interrupted
(KeyboardInterrupt), so nothing is left running. Should a test runner abandon a block
altogether, the interpreter's exit still stops its cluster.

The pytest plugin (:mod:`procorch.testing.plugin`, registered as ``procorch``) offers both as
fixtures: ``procorch_cluster`` (async, with pytest-asyncio) and ``procorch_cluster_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from procorch.api import errors
from procorch.launcher.up import UpConfig
from procorch.testing.handles import Cluster, NotReady, SyncCluster
from procorch.testing.runner import ClusterThread

__all__ = ["Cluster", "NotReady", "SyncCluster", "cluster", "cluster_sync"]


@contextlib.asynccontextmanager
async def cluster(
    manifests: Sequence[str | Path] = (),
    *,
    data_dir: str | Path | None = None,
    service_cidr: str | None = None,
    **agent_settings: Any,
) -> AsyncIterator[Cluster]:
    """An isolated procorch for the block (see the module docstring). Keyword arguments
    override the node agent's settings (e.g. ``crashloop_initial=1.0``).

    Isolated also from other procorch on the machine (other tests, ``procorch up``): pod
    IPs come from a random /20 of 127.16.0.0/12 and cluster IPs from a random /20 of
    127.96.0.0/12, unless ``pod_cidr`` / ``service_cidr`` say otherwise."""
    runner = _cluster_thread(
        manifests, data_dir=data_dir, service_cidr=service_cidr, agent_settings=agent_settings
    )
    handle = Cluster(runner)
    try:
        await asyncio.wrap_future(runner.start())
        yield handle
    finally:
        # Shielded: a cancelled test still waits until every process it started is gone.
        stop = asyncio.ensure_future(_stop(runner, handle))
        try:
            await asyncio.shield(stop)
        except asyncio.CancelledError:
            await stop
            raise


@contextlib.contextmanager
def cluster_sync(
    manifests: Sequence[str | Path] = (),
    *,
    data_dir: str | Path | None = None,
    service_cidr: str | None = None,
    **agent_settings: Any,
) -> Iterator[SyncCluster]:
    """:func:`cluster` for plain tests: ``with cluster_sync([...]) as c:`` gives a
    :class:`SyncCluster`, whose methods block. Usable from any thread (an async test may use
    it too, though its blocking calls then block that test's loop)."""
    runner = _cluster_thread(
        manifests, data_dir=data_dir, service_cidr=service_cidr, agent_settings=agent_settings
    )
    handle: SyncCluster | None = None
    try:
        runner.start().result()
        handle = SyncCluster(runner)
        yield handle
    finally:
        if handle is not None:
            handle.close()
        with contextlib.suppress(errors.ApiError):
            runner.stop().result()
        runner.join()


def _cluster_thread(
    manifests: Sequence[str | Path],
    *,
    data_dir: str | Path | None,
    service_cidr: str | None,
    agent_settings: dict[str, Any],
) -> ClusterThread:
    agent_settings.setdefault("pod_cidr", _random_subnet("127.16.0.0/12"))
    service_cidr = service_cidr or _random_subnet("127.96.0.0/12")
    own_dir: Path | None = None
    if data_dir is None:
        own_dir = Path(tempfile.mkdtemp(prefix="procorch-test-"))
        data_dir = own_dir / "data"
    return ClusterThread(
        UpConfig(
            data_dir=Path(data_dir),
            api_port=0,
            ingress_port=0,
            service_cidr=service_cidr,
            agent=dict(agent_settings),
        ),
        manifests=[Path(m) for m in manifests],
        # Removed by the thread once everything is stopped, however the block was left.
        remove_when_stopped=own_dir,
    )


def _random_subnet(parent: str, prefix: int = 20) -> str:
    subnets = list(ipaddress.IPv4Network(parent).subnets(new_prefix=prefix))
    return str(random.choice(subnets))


async def _stop(runner: ClusterThread, handle: Cluster) -> None:
    await handle.aclose()
    with contextlib.suppress(errors.ApiError):
        await asyncio.wrap_future(runner.stop())
    runner.join()
