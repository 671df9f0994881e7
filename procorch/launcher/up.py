"""``procorch up``: the all-in-one wiring of store, API server, controllers, scheduler, the
local node agent and (later) the proxies, in one process and one event loop.

Start order: store → API service → bootstrap objects → HTTP server → kubeconfig →
controllers → scheduler → node agent → apply the given manifests. Stop order is the reverse,
each step bounded in time: the agent stops every pod (within its grace period) and writes its
final status while the API is still up. The first SIGINT/SIGTERM stops everything in order; a
second one forces an immediate exit (the node's supervisor process then stops the containers
on its own, see :mod:`procorch.agent.runtime.shim`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procorch.apiserver.auth import ADMIN, SYSTEM
from procorch.apiserver.controlplane import ControlPlane
from procorch.client.apply import Applied, apply_all
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.client.kubeconfig import Credentials
from procorch.client.kubeconfig import write as write_kubeconfig
from procorch.client.local import LocalClient
from procorch.client.manifests import Manifest
from procorch.client.manifests import load as load_manifests
from procorch.controllers.cronjob import CronJobController
from procorch.controllers.daemonset import DaemonSetController
from procorch.controllers.deployment import DeploymentController
from procorch.controllers.disruption import DisruptionController
from procorch.controllers.endpoints import EndpointsController
from procorch.controllers.gc import GarbageCollector
from procorch.controllers.hpa import HorizontalPodAutoscalerController
from procorch.controllers.job import JobController
from procorch.controllers.job_ttl import TTLAfterFinishedController
from procorch.controllers.namespace import NamespaceController
from procorch.controllers.nodeipam import IpamSettings, NodeIpamController
from procorch.controllers.nodelifecycle import LifecycleSettings, NodeLifecycleController
from procorch.controllers.podgc import PodGarbageCollector
from procorch.controllers.pvcbinder import PVCBinder
from procorch.controllers.pvcprotection import PVCProtectionController
from procorch.controllers.replicaset import ReplicaSetController
from procorch.controllers.serviceaccounts import ServiceAccountController
from procorch.kit.gcpolicy import GcPolicy
from procorch.kit.limits import raise_open_files_limit
from procorch.kit.logging import get_logger
from procorch.kit.tasks import TaskSet
from procorch.launcher.signals import stop_on_signals
from procorch.proxy.ingress.settings import IngressSettings
from procorch.proxy.ingress.status import ensure_default_class
from procorch.reconcile.factory import InformerFactory
from procorch.scheduler import Scheduler

if TYPE_CHECKING:
    from procorch.agent.agent import Agent
    from procorch.launcher.node import NodeComponents
    from procorch.proxy.ingress import IngressRouter
    from procorch.proxy.l4 import ServiceProxy

log = get_logger("launcher")


@dataclass
class UpConfig:
    data_dir: Path = Path(".procorch")
    api_host: str = "127.0.0.1"
    api_port: int = 6443
    ingress_port: int = 0
    """The node's Ingress HTTP listener (``procorch up`` passes 8080); 0 picks a free port."""
    ingress_tls_port: int | None = 0
    """The Ingress HTTPS listener (``procorch up`` passes 8443); 0 picks a free port, None
    disables it."""
    ingress: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.ingress.IngressSettings` fields."""
    service_cidr: str = "127.96.0.0/12"
    """Services' cluster IPs come from this range (all of 127.0.0.0/8 reaches ``lo``)."""
    cluster_cidr: str = IpamSettings.cluster_cidr
    """Each Node's pod CIDR comes out of this range (``--cluster-cidr``)..."""
    node_cidr_mask_size: int = IpamSettings.node_cidr_mask_size
    """...in subnets of this prefix length (``--node-cidr-mask-size``)."""
    advertise_address: str = ""
    """The API's address for nodes and kubeconfigs (default: ``api_host``)."""
    service_proxy: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.settings.ProxySettings` fields."""
    dns: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.proxy.dns.DNSSettings` fields."""
    files: list[Path] = field(default_factory=list)
    node: bool = True
    """Run the local node (and the scheduler)."""
    remote_nodes: bool = False
    """Serve nodes that join with ``procorch agent`` (as ``procorch up`` always does): the
    scheduler runs even without a local node, and the control plane keeps the default
    IngressClass. False with ``node=False`` gives a bare control plane (for tests)."""
    node_name: str | None = None
    agent: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~procorch.agent.settings.AgentSettings` fields."""
    node_monitor_grace_period: float = LifecycleSettings.grace_period
    """Seconds without a heartbeat before a node is Unknown (``--node-monitor-grace-period``)."""
    objects: list[dict[str, Any]] = field(default_factory=list)
    """Objects to apply with the files (a Procfile's Deployments)."""
    procfile: bool = False
    """Name output lines by process type and replica (``web.1``), as foreman does."""
    watch: list[Path] = field(default_factory=list)
    """Re-apply the files (and ``reload()``'s objects) when anything under these changes."""
    reload: Any = None
    """``() -> list of objects``: the Procfile's objects, read again (``--watch``)."""
    show_progress: bool = False
    """Show what is starting until everything is ready, then the URLs (``procorch up``)."""
    show_output: bool = False
    """Print every container's output on stdout, prefixed with its pod (``procorch up``)."""


class Procorch:
    """One running procorch: start it, use ``client``/``kubeconfig_path``, stop it."""

    def __init__(self, config: UpConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.control_plane = ControlPlane(
            self.data_dir,
            host=config.api_host,
            port=config.api_port,
            service_cidr=config.service_cidr,
            advertise_address=config.advertise_address,
        )
        service = self.control_plane.service
        self.client: Client = LocalClient(service, user=SYSTEM)
        self.admin: Client = LocalClient(service, user=ADMIN, field_manager="procorch")
        self.crashed = asyncio.Event()
        self.crash_reason = ""
        self.tasks = TaskSet("controllers", on_crash=self._on_crash)
        self.informers = InformerFactory(self.client, self.tasks)
        self.node: NodeComponents | None = None
        # One recorder for the whole process (controllers, scheduler, node), each component
        # writing under its own name; room for what each had on its own (1,000 queued
        # Events, as client-go's broadcaster).
        self.events = EventRecorder(self.client, component="procorch", queue_size=10_000)
        self.started = False

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def api_url(self) -> str:
        return self.control_plane.url

    @property
    def ingress_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the node's Ingress router, once it listens."""
        return self.ingress.url if self.ingress is not None else None

    def _on_crash(self, name: str, exc: BaseException | None) -> None:
        self.crash_reason = f"{name}: {exc!r}" if exc else f"{name} exited"
        self.crashed.set()

    async def start(self) -> None:
        raise_open_files_limit()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        await self.control_plane.start()
        self.tasks.start("events", self.events.run())
        write_kubeconfig(
            self.kubeconfig_path,
            Credentials(
                server=self.api_url,
                token=self.control_plane.admin_token,
                ca_data=self.control_plane.ca_pem,
            ),
        )
        for controller in (
            NamespaceController(self.client, self.informers),
            GarbageCollector(self.client, self.informers),
            PodGarbageCollector(self.client, self.informers),
            ServiceAccountController(self.client, self.informers, ca_pem=self.control_plane.ca_pem),
            PVCProtectionController(self.client, self.informers),
            PVCBinder(self.client, self.informers),
            EndpointsController(self.client, self.informers),
            DisruptionController(self.client, self.informers),
            NodeIpamController(
                self.client,
                self.informers,
                IpamSettings(
                    cluster_cidr=self.config.cluster_cidr,
                    node_cidr_mask_size=self.config.node_cidr_mask_size,
                ),
            ),
            NodeLifecycleController(
                self.client,
                self.informers,
                LifecycleSettings(grace_period=self.config.node_monitor_grace_period),
            ),
            ReplicaSetController(self.client, self.informers, events=self.events),
            DeploymentController(self.client, self.informers, events=self.events),
            DaemonSetController(self.client, self.informers, events=self.events),
            HorizontalPodAutoscalerController(
                self.client,
                self.informers,
                metrics=self.control_plane.node_proxy.pod_metrics,
                events=self.events,
            ),
            JobController(self.client, self.informers, events=self.events),
            CronJobController(self.client, self.informers, events=self.events),
            TTLAfterFinishedController(self.client, self.informers),
        ):
            self.tasks.start(controller.name, controller.run())
        if self.config.node or self.config.remote_nodes:
            self._start_scheduler()
        if self.config.remote_nodes:
            # For joined nodes' Ingress routers (which may not create cluster objects).
            await ensure_default_class(self.client, IngressSettings.class_name)
        if self.config.node:
            await self._start_node()
        self.started = True
        log.info("procorch is up", api=self.api_url, kubeconfig=str(self.kubeconfig_path))

    def _start_scheduler(self) -> None:
        scheduler = Scheduler(self.client, self.informers, events=self.events)
        self.tasks.start("scheduler", scheduler.run())

    async def _start_node(self) -> None:
        from procorch.agent.settings import AgentSettings
        from procorch.launcher.node import NodeComponents, NodeConfig

        settings = AgentSettings(data_dir=self.data_dir, **self.config.agent)
        if self.config.node_name:
            settings.node_name = self.config.node_name
        cert, key, ca = self.control_plane.issue_node_credentials(
            settings.node_name, settings.node_ip, settings.node_dir / "pki"
        )
        settings.tls_cert_file, settings.tls_key_file, settings.client_ca_file = cert, key, ca
        self.node = NodeComponents(
            self.client,
            NodeConfig(
                agent=settings,
                ingress_port=self.config.ingress_port,
                ingress_tls_port=self.config.ingress_tls_port,
                ingress=self.config.ingress,
                service_proxy=self.config.service_proxy,
                dns=self.config.dns,
            ),
            informers=self.informers,
            events=self.events,
            on_crash=self._on_crash,
        )
        await self.node.start(before_ingress=self._show_output)
        # The node's counters are served at the API server's /metrics
        # (`kubectl get --raw /metrics`).
        sources = self.control_plane.http.metrics_sources
        assert self.node.service_proxy is not None and self.node.ingress is not None
        sources["service-proxy"] = self.node.service_proxy.metrics_text
        sources["ingress"] = self.node.ingress.metrics_text

    async def _show_output(self, agent: Agent) -> None:
        if not self.config.show_output:
            return
        from procorch.launcher.console import OutputMux, default_name, procfile_names

        mux = OutputMux(name_of=procfile_names() if self.config.procfile else default_name)
        agent.on_output(
            lambda w, container, stream, data: mux.feed(
                w.namespace, w.name, container, len(w.init) + len(w.app), stream, data
            )
        )
        await agent.follow_output(True)

    @property
    def agent(self) -> Agent | None:
        return self.node.agent if self.node is not None else None

    @property
    def ingress(self) -> IngressRouter | None:
        return self.node.ingress if self.node is not None else None

    @property
    def service_proxy(self) -> ServiceProxy | None:
        return self.node.service_proxy if self.node is not None else None

    async def apply_files(
        self, files: list[Path], objects: list[dict[str, Any]] | None = None
    ) -> list[Applied]:
        manifests = load_manifests(files) + [
            Manifest(obj, source="Procfile") for obj in objects or []
        ]
        return await apply_all(self.admin, manifests, field_manager="procorch")

    async def stop(self) -> None:
        """Stop in reverse start order; safe to call more than once."""
        log.info("stopping procorch")
        began = time.monotonic()
        if self.node is not None:
            for source in ("ingress", "service-proxy"):
                self.control_plane.http.metrics_sources.pop(source, None)
            await self.node.stop()
            self.node = None
        await self.tasks.stop(timeout=10.0)
        await self.control_plane.stop()
        if self.started:
            log.info("procorch stopped", seconds=round(time.monotonic() - began, 2))
        self.started = False

    async def __aenter__(self) -> Procorch:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run_up(config: UpConfig, *, on_ready: Any = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    stop = asyncio.Event()
    with stop_on_signals(stop, "shutting down"):
        return await _run_up(config, stop, on_ready)


async def _run_up(config: UpConfig, stop: asyncio.Event, on_ready: Any) -> int:
    procorch = Procorch(config)
    gc_policy = GcPolicy()
    code = 0
    pid_file = procorch.data_dir / PID_FILE
    try:
        running = running_pid(procorch.data_dir)
        if running is not None:
            log.error(
                "procorch is already running with this data dir; stop it with `procorch down`",
                pid=running,
                data_dir=str(procorch.data_dir),
            )
            return 1
        await procorch.start()
        gc_policy.start()
        if config.files or config.objects:
            try:
                for applied in await procorch.apply_files(config.files, config.objects):
                    log.info("applied", object=applied.describe())
            except Exception as exc:  # noqa: BLE001 - report and stop cleanly
                log.error("could not apply manifests; nothing was applied", error=str(exc))
                code = 1
                stop.set()
        if code == 0:
            # Written once the manifests are applied: `up -d` returns when this appears.
            pid_file.write_text(f"{os.getpid()}\n")
        if on_ready is not None and code == 0:
            on_ready(procorch)
        progress: asyncio.Task[None] | None = None
        if config.show_progress and code == 0:
            from rich.console import Console

            from procorch.launcher.progress import ingress_url_of, watch_startup

            progress = asyncio.create_task(
                watch_startup(
                    procorch.admin,
                    console=Console(stderr=True),
                    kubeconfig=str(procorch.kubeconfig_path),
                    ingress_url=ingress_url_of(procorch),
                ),
                name="up/progress",
            )
        watcher: asyncio.Task[None] | None = None
        if config.watch and code == 0:
            from procorch.launcher.watch import watch_and_apply

            watcher = asyncio.create_task(
                watch_and_apply(
                    procorch,
                    paths=config.watch,
                    files=config.files,
                    objects=config.reload,
                    echo=lambda text: print(text, file=sys.stderr, flush=True),
                ),
                name="up/watch",
            )
        crashed = asyncio.create_task(procorch.crashed.wait(), name="up/crash-watch")
        stopped = asyncio.create_task(stop.wait(), name="up/stop-watch")
        await asyncio.wait([crashed, stopped], return_when=asyncio.FIRST_COMPLETED)
        extras = [t for t in (progress, watcher) if t is not None]
        for task in (crashed, stopped, *extras):
            task.cancel()
        await asyncio.gather(*extras, return_exceptions=True)
        if procorch.crashed.is_set():
            log.error("a component failed; stopping", reason=procorch.crash_reason)
            code = 1
    finally:
        await gc_policy.stop()
        await procorch.stop()
        if running_pid(procorch.data_dir) == os.getpid():
            pid_file.unlink(missing_ok=True)
    return code


PID_FILE = "procorch.pid"


def running_pid(data_dir: Path) -> int | None:
    """The pid of the ``procorch up`` serving ``data_dir``, if one is running (a stale pid
    file, or a pid reused by another program, does not count)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except OSError:
        return None
    if not any(b"procorch" in part for part in cmdline):
        return None
    return pid
