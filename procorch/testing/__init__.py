"""procorch for test suites: a whole stack of services up for the length of a test.

::

    from procorch.testing import cluster

    async def test_checkout_calls_the_api():
        async with cluster(["deploy/"]) as c:
            await c.wait_ready(timeout=60)
            async with aiohttp.ClientSession() as http:
                async with http.get(c.service_url("api") + "/health") as r:
                    assert r.status == 200

:func:`cluster` starts an isolated procorch in the test's own event loop - API server on a
free port, its own temporary data dir (unless ``data_dir`` is given), its own node and node
supervisor - applies the manifests (files or directories, all or nothing), and yields a
:class:`Cluster`. Leaving the block stops every pod (grace periods honoured) and everything
else; that also happens when the test fails or is cancelled, so nothing is left running.

The pytest plugin (:mod:`procorch.testing.plugin`, registered as ``procorch``) offers the same
as a fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client import readiness
from procorch.client.base import Client
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import read as read_kubeconfig
from procorch.launcher.up import Procorch, UpConfig

__all__ = ["Cluster", "NotReady", "cluster"]

DEPLOYMENTS = must("apps/deployments")
PODS = must("core/pods")
JOBS = must("batch/jobs")
SERVICES = must("core/services")


class NotReady(AssertionError):
    """``wait_ready`` timed out, or a Job failed; the message says what is not ready."""


class Cluster:
    def __init__(self, procorch: Procorch) -> None:
        self.procorch = procorch
        self._http: HttpClient | None = None

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for kubectl or any Kubernetes client (admin credentials)."""
        return self.procorch.kubeconfig_path

    @property
    def api_url(self) -> str:
        return self.procorch.api_url

    @property
    def client(self) -> Client:
        """procorch's own API client (in-process), with admin rights."""
        return self.procorch.admin

    @property
    def ingress_url(self) -> str:
        url = getattr(self.procorch, "ingress_url", None)
        if not url:
            raise RuntimeError("this procorch has no Ingress listener")
        return str(url)

    def http(self) -> HttpClient:
        if self._http is None:
            self._http = HttpClient.from_credentials(read_kubeconfig(self.kubeconfig))
        return self._http

    async def service_url(
        self, name: str, *, namespace: str = "default", port: int | str | None = None
    ) -> str:
        """``http://<clusterIP>:<port>`` of a Service (its first port unless ``port`` names
        one, by number or name)."""
        svc = await self.client.get(SERVICES, name, namespace=namespace)
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            raise ValueError(f"service {namespace}/{name} has no cluster IP")
        ports = spec.get("ports") or []
        chosen = ports[0] if ports and port is None else None
        for p in ports:
            if port is not None and (p.get("port") == port or p.get("name") == port):
                chosen = p
        if chosen is None:
            raise ValueError(f"service {namespace}/{name} has no port {port!r}")
        return f"http://{ip}:{chosen['port']}"

    async def logs(self, pod: str, *, namespace: str = "default", container: str = "") -> str:
        """A container's output so far (``kubectl logs``)."""
        http = self.http()
        params = {"container": container} if container else None
        text = await http.request(
            "GET",
            f"{http.server}{PODS.path(namespace, pod)}/log",
            params=params,
            accept="text/plain",
        )
        return str(text or "")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every Deployment is rolled out, every (non-Job) Pod is Ready and every
        Job has completed. Raises :class:`NotReady` naming what is not, after ``timeout``, or
        at once when a Job failed."""
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        while True:
            problems = await self._not_ready()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise NotReady(f"not ready after {timeout:.0f} s: {'; '.join(problems)}")
            await asyncio.sleep(0.1)

    async def _not_ready(self) -> list[str]:
        items = readiness.evaluate(
            (await self.client.list(DEPLOYMENTS)).items,
            (await self.client.list(JOBS)).items,
            (await self.client.list(PODS)).items,
        )
        for item in items:
            if item.kind == "job" and item.state == "failing":
                raise NotReady(f"{item.ref} failed: {item.detail}")
        return [
            f"{item.ref}: {item.detail}" if item.detail else item.ref
            for item in items
            if item.state not in ("ready", "done")
        ]


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
    agent_settings.setdefault("pod_cidr", _random_subnet("127.16.0.0/12"))
    service_cidr = service_cidr or _random_subnet("127.96.0.0/12")
    own_dir = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="procorch-test-")) if own_dir else Path(data_dir)  # type: ignore[arg-type]
    procorch = Procorch(
        UpConfig(
            data_dir=root / "data" if own_dir else root,
            api_port=0,
            ingress_port=0,
            service_cidr=service_cidr,
            agent=dict(agent_settings),
        )
    )
    handle = Cluster(procorch)
    try:
        await procorch.start()
        if manifests:
            await procorch.apply_files([Path(m) for m in manifests])
        yield handle
    finally:
        # Shielded: a cancelled test still stops every process it started.
        stop = asyncio.ensure_future(_stop(procorch, handle))
        try:
            await asyncio.shield(stop)
        except asyncio.CancelledError:
            await stop
            raise
        finally:
            if own_dir:
                shutil.rmtree(root, ignore_errors=True)


def _random_subnet(parent: str, prefix: int = 20) -> str:
    import ipaddress
    import random

    subnets = list(ipaddress.IPv4Network(parent).subnets(new_prefix=prefix))
    return str(random.choice(subnets))


async def _stop(procorch: Procorch, handle: Cluster) -> None:
    if handle._http is not None:  # noqa: SLF001
        with contextlib.suppress(Exception):
            await handle._http.close()  # noqa: SLF001
    with contextlib.suppress(errors.ApiError):
        await procorch.stop()
