"""What a test holds of its procorch: :class:`Cluster` (async) and :class:`SyncCluster`.

Concurrency contract: the procorch itself runs on its own thread and loop
(:mod:`procorch.testing.runner`).

* A :class:`Cluster` belongs to the loop of the test that entered ``async with cluster(...)``:
  its coroutines run there and talk to the API server over HTTP (:attr:`Cluster.client` is a
  :class:`~procorch.client.http.HttpClient` with the admin credentials of the kubeconfig,
  created on first use), so they never touch the cluster's loop and the test may block
  between them.
* A :class:`SyncCluster`'s methods block the calling thread (any thread but the cluster's)
  until their work, done on the cluster's loop with the in-process admin client, is done;
  interrupted (KeyboardInterrupt), they cancel that work before re-raising.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from procorch.api.resources import must
from procorch.client import readiness
from procorch.client.base import Client
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import read as read_kubeconfig

if TYPE_CHECKING:
    from procorch.launcher.up import Procorch
    from procorch.testing.runner import ClusterThread

T = TypeVar("T")

DEPLOYMENTS = must("apps/deployments")
DAEMON_SETS = must("apps/daemonsets")
PODS = must("core/pods")
JOBS = must("batch/jobs")
SERVICES = must("core/services")


class NotReady(AssertionError):
    """``wait_ready`` timed out, or a Job failed; the message says what is not ready."""


class Cluster:
    """A running procorch, for an async test (see the module docstring)."""

    def __init__(self, runner: ClusterThread, *, client: Client | None = None) -> None:
        self._runner = runner
        self._client = client
        self._http: HttpClient | None = None

    @property
    def procorch(self) -> Procorch:
        """The :class:`~procorch.launcher.up.Procorch` itself. It lives on the cluster's own
        thread and loop: read its attributes, never await its coroutines from the test."""
        procorch = self._runner.procorch
        if procorch is None:
            raise RuntimeError("this procorch has not started")
        return procorch

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for kubectl or any Kubernetes client (admin credentials)."""
        return self.procorch.kubeconfig_path

    @property
    def api_url(self) -> str:
        return self.procorch.api_url

    @property
    def client(self) -> Client:
        """A procorch API client with admin rights, for the test's loop: an
        :class:`~procorch.client.http.HttpClient` (the same interface as procorch's
        in-process client), closed when the block is left."""
        return self._client if self._client is not None else self.http()

    @property
    def ingress_url(self) -> str:
        url = self.procorch.ingress_url
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
        """Wait until every Deployment and DaemonSet is rolled out, every (non-Job) Pod is
        Ready and every Job has completed. Raises :class:`NotReady` naming what is not, after ``timeout``, or
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
            (await self.client.list(DAEMON_SETS)).items,
        )
        for item in items:
            if item.kind == "job" and item.state == "failing":
                raise NotReady(f"{item.ref} failed: {item.detail}")
        return [
            f"{item.ref}: {item.detail}" if item.detail else item.ref
            for item in items
            if item.state not in ("ready", "done")
        ]

    async def aclose(self) -> None:
        """Close the HTTP client (on the loop that used it)."""
        if self._http is not None:
            http, self._http = self._http, None
            with contextlib.suppress(Exception):
                await http.close()


class SyncCluster:
    """A running procorch, for a plain (synchronous) test: the methods of :class:`Cluster`,
    blocking (see the module docstring)."""

    def __init__(self, runner: ClusterThread) -> None:
        if runner.procorch is None:
            raise RuntimeError("this procorch has not started")
        self._runner = runner
        # Its coroutines run on the cluster's loop, with the in-process admin client.
        self._on_loop = Cluster(runner, client=runner.procorch.admin)

    @property
    def procorch(self) -> Procorch:
        """As :attr:`Cluster.procorch`; run its coroutines with :meth:`run`."""
        return self._on_loop.procorch

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for kubectl or any Kubernetes client (admin credentials)."""
        return self._on_loop.kubeconfig

    @property
    def api_url(self) -> str:
        return self._on_loop.api_url

    @property
    def ingress_url(self) -> str:
        return self._on_loop.ingress_url

    @property
    def client(self) -> Client:
        """procorch's in-process API client, with admin rights. Its methods are coroutines
        of the cluster's loop: call them through :meth:`run`
        (``c.run(c.client.list(PODS))``)."""
        return self._on_loop.client

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run a coroutine on the cluster's loop and return its result. Interrupted, or
        after ``timeout`` seconds, the coroutine is cancelled."""
        future = self._runner.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def service_url(
        self, name: str, *, namespace: str = "default", port: int | str | None = None
    ) -> str:
        """As :meth:`Cluster.service_url`."""
        return self.run(self._on_loop.service_url(name, namespace=namespace, port=port))

    def logs(self, pod: str, *, namespace: str = "default", container: str = "") -> str:
        """As :meth:`Cluster.logs`."""
        return self.run(self._on_loop.logs(pod, namespace=namespace, container=container))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """As :meth:`Cluster.wait_ready`."""
        self.run(self._on_loop.wait_ready(timeout))

    def close(self) -> None:
        """Close the HTTP client :meth:`logs` opened on the cluster's loop."""
        with contextlib.suppress(RuntimeError, TimeoutError, concurrent.futures.CancelledError):
            self.run(self._on_loop.aclose(), timeout=10)
