"""The agent's Node object and its heartbeat Lease.

On start the agent registers its Node (or takes over the one a previous run left): labels,
``spec.podCIDR``, and a status with capacity and allocatable measured with psutil, addresses,
``nodeInfo``, the endpoint the API server calls for logs and stats, and the conditions
MemoryPressure, DiskPressure, PIDPressure and Ready. Then, as kubelet does, it renews a Lease
named after the node in ``kube-node-lease`` every ``lease_renew_interval`` seconds (the cheap
heartbeat), and re-reads the machine every ``node_status_interval`` seconds, writing the Node's
status only when something changed or ``node_status_report_frequency`` (5 minutes) passed.

Concurrency: :meth:`NodeManager.run` is one task; :meth:`register` is awaited before it.
"""

from __future__ import annotations

import asyncio
import platform
import time
import uuid
from typing import Any

import psutil

from procorch.agent.settings import AgentSettings
from procorch.api import errors
from procorch.api.meta import rfc3339, rfc3339_micro
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.kit.logging import get_logger

log = get_logger("agent.node")

NODES = must("core/nodes")
LEASES = must("coordination.k8s.io/leases")
LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.32.0-procorch"

# kubelet's default hard eviction thresholds.
MEMORY_PRESSURE_BYTES = 100 * 1024 * 1024
DISK_PRESSURE_FRACTION = 0.10
PID_PRESSURE_FRACTION = 0.10


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def capacity(settings: AgentSettings) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) of this machine."""
    cpus = psutil.cpu_count() or 1
    memory = psutil.virtual_memory().total
    try:
        disk = psutil.disk_usage(str(settings.data_dir)).total
    except OSError:
        disk = 0
    cap = {
        "cpu": str(cpus),
        "memory": f"{memory // 1024}Ki",
        "pods": str(settings.max_pods),
        "ephemeral-storage": f"{disk // 1024}Ki",
    }
    alloc_cpu = max(0, cpus * 1000 - settings.reserved_cpu_millis)
    alloc_mem = max(0, memory - settings.reserved_memory_bytes)
    alloc = {
        "cpu": str(cpus) if alloc_cpu % 1000 == 0 else f"{alloc_cpu}m",
        "memory": f"{alloc_mem // 1024}Ki",
        "pods": str(settings.max_pods),
        "ephemeral-storage": f"{int(disk * 0.9) // 1024}Ki",
    }
    return cap, alloc


def pressures(settings: AgentSettings) -> dict[str, tuple[bool, str, str]]:
    """Condition type -> (under pressure, reason, message), kubelet's wording."""
    available = psutil.virtual_memory().available
    memory = available < MEMORY_PRESSURE_BYTES
    try:
        usage = psutil.disk_usage(str(settings.data_dir))
        disk = usage.total > 0 and usage.free / usage.total < DISK_PRESSURE_FRACTION
    except OSError:
        disk = False
    pid_max = int(_read("/proc/sys/kernel/pid_max") or 4194304)
    pids = len(psutil.pids())
    pid = pid_max > 0 and (pid_max - pids) / pid_max < PID_PRESSURE_FRACTION
    return {
        "MemoryPressure": (
            memory,
            "KubeletHasInsufficientMemory" if memory else "KubeletHasSufficientMemory",
            "kubelet has insufficient memory available"
            if memory
            else "kubelet has sufficient memory available",
        ),
        "DiskPressure": (
            disk,
            "KubeletHasDiskPressure" if disk else "KubeletHasNoDiskPressure",
            "kubelet has disk pressure" if disk else "kubelet has no disk pressure",
        ),
        "PIDPressure": (
            pid,
            "KubeletHasInsufficientPID" if pid else "KubeletHasSufficientPID",
            "kubelet has insufficient PID available"
            if pid
            else "kubelet has sufficient PID available",
        ),
    }


class NodeManager:
    def __init__(self, client: Client, settings: AgentSettings, *, kubelet_port: int) -> None:
        self.client = client
        self.settings = settings
        self.kubelet_port = kubelet_port
        self.uid = ""
        self.allocatable: dict[str, str] = {}
        self._last_status: dict[str, Any] = {}
        self._last_write = 0.0
        self._transitions: dict[str, tuple[str, str]] = {}  # type -> (status, time)
        self._boot_id = _read("/proc/sys/kernel/random/boot_id") or str(uuid.uuid4())
        self._machine_id = _read("/etc/machine-id") or self._boot_id.replace("-", "")
        self.extra_annotations: dict[str, str] = {}

    # -- the Node ----------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": self.settings.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": _arch(),
            **self.settings.labels,
        }

    def _status(self, *, ready: bool = True, message: str = "") -> dict[str, Any]:
        cap, alloc = capacity(self.settings)
        self.allocatable = alloc
        now = rfc3339()
        conditions = []
        for ctype, (bad, reason, text) in pressures(self.settings).items():
            conditions.append(self._condition(ctype, "True" if bad else "False", reason, text, now))
        conditions.append(
            self._condition(
                "Ready",
                "True" if ready else "False",
                "KubeletReady" if ready else "KubeletNotReady",
                message or ("kubelet is posting ready status" if ready else "kubelet stopped"),
                now,
            )
        )
        return {
            "capacity": cap,
            "allocatable": alloc,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.settings.node_ip},
                {"type": "Hostname", "address": self.settings.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": self._machine_id,
                "systemUUID": self._machine_id,
                "bootID": self._boot_id,
                "kernelVersion": platform.release(),
                "osImage": _os_image(),
                "containerRuntimeVersion": "procorch://0.1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }

    def _condition(
        self, ctype: str, status: str, reason: str, message: str, now: str
    ) -> dict[str, Any]:
        previous = self._transitions.get(ctype)
        if previous is None or previous[0] != status:
            self._transitions[ctype] = (status, now)
        return {
            "type": ctype,
            "status": status,
            "lastHeartbeatTime": now,
            "lastTransitionTime": self._transitions[ctype][1],
            "reason": reason,
            "message": message,
        }

    async def register(self) -> None:
        """Create (or take over) this node's Node, wait for its pod CIDR, report status."""
        name = self.settings.node_name
        # A pod CIDR set by hand is registered as kubelet's --pod-cidr is; otherwise the
        # control plane's node IPAM gives one (see procorch.controllers.nodeipam).
        own = self.settings.pod_cidr
        spec = {"podCIDR": own, "podCIDRs": [own]} if own else {}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": self._labels(),
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "procorch.io/data-dir": str(self.settings.data_dir),
                    **self.extra_annotations,
                },
            },
            "spec": spec,
        }
        try:
            node = await self.client.create(NODES, body)
            log.info("registered node", node=name)
        except errors.AlreadyExists:
            node = await self.client.patch(
                NODES,
                name,
                {
                    "metadata": {
                        "labels": body["metadata"]["labels"],
                        "annotations": body["metadata"]["annotations"],
                    }
                },
            )
            if spec and not _pod_cidr(node):
                node = await self.client.patch(NODES, name, {"spec": spec})
            log.info("took over existing node", node=name)
        self.uid = str(node["metadata"]["uid"])
        cidr = _pod_cidr(node) or await self._wait_for_pod_cidr(node)
        # Kubernetes' pod CIDR of an existing node wins over our setting.
        if own and cidr != own:
            log.warning("node keeps its pod CIDR", pod_cidr=cidr, setting=own)
        self.settings.pod_cidr = cidr
        await self.update_status(force=True)
        await self.renew_lease()

    async def _wait_for_pod_cidr(self, node: dict[str, Any]) -> str:
        """Until the control plane's node IPAM has given the Node a pod CIDR (kubelet waits
        for one the same way before it starts pods)."""
        name = self.settings.node_name
        log.info("waiting for the control plane to give the node a pod CIDR", node=name)
        rv = str(node["metadata"].get("resourceVersion") or "")
        while True:
            try:
                async for event in self.client.watch(
                    NODES, field_selector=f"metadata.name={name}", resource_version=rv
                ):
                    if event.type == "BOOKMARK":
                        continue
                    if event.type == "DELETED":
                        raise errors.NotFound(f'nodes "{name}" was deleted while registering')
                    if cidr := _pod_cidr(event.object):
                        log.info("node has its pod CIDR", node=name, pod_cidr=cidr)
                        return cidr
                    rv = event.resource_version
            except errors.Gone:
                rv = ""

    async def update_status(self, *, force: bool = False, ready: bool = True) -> None:
        status = self._status(ready=ready)
        comparable = _without_times(status)
        if (
            not force
            and comparable == self._last_status
            and time.monotonic() - self._last_write < self.settings.node_status_report_frequency
            and not await self._conditions_overwritten(status)
        ):
            return
        await self.client.patch(
            NODES, self.settings.node_name, {"status": status}, subresource="status"
        )
        self._last_status = comparable
        self._last_write = time.monotonic()

    async def _conditions_overwritten(self, status: dict[str, Any]) -> bool:
        """Whether the Node's conditions in the API differ from ours: the node lifecycle
        controller sets them ``Unknown`` while it does not hear from us (a partition, a
        stopped agent), and a node that is back must say Ready at once, as kubelet compares
        with the Node it reads rather than with what it last wrote."""
        try:
            node = await self.client.get(NODES, self.settings.node_name)
        except errors.ApiError:
            return False

        def statuses(conditions: Any) -> dict[str, str]:
            return {str(c.get("type")): str(c.get("status")) for c in conditions or []}

        stored = statuses((node.get("status") or {}).get("conditions"))
        return stored != statuses(status.get("conditions"))

    async def mark_not_ready(self) -> None:
        """Say the node is going away (a graceful agent stop)."""
        try:
            await self.update_status(force=True, ready=False)
        except errors.ApiError as exc:
            log.debug("could not mark node not ready", error=str(exc))

    # -- the Lease ---------------------------------------------------------------------------

    async def renew_lease(self) -> None:
        name = self.settings.node_name
        now = rfc3339_micro()
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": self.settings.lease_duration,
            "renewTime": now,
        }
        try:
            await self.client.patch(LEASES, name, {"spec": spec}, namespace=LEASE_NAMESPACE)
        except errors.NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": LEASE_NAMESPACE,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uid}
                    ],
                },
                "spec": {**spec, "acquireTime": now},
            }
            try:
                await self.client.create(LEASES, body, namespace=LEASE_NAMESPACE)
            except errors.AlreadyExists:
                pass

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_lease = loop.time() + self.settings.lease_renew_interval
        next_status = loop.time() + self.settings.node_status_interval
        failures = 0
        while True:
            await asyncio.sleep(max(0.0, min(next_lease, next_status) - loop.time()))
            try:
                if loop.time() >= next_lease:
                    await self.renew_lease()
                    next_lease = loop.time() + self.settings.lease_renew_interval
                if loop.time() >= next_status:
                    await self.update_status()
                    next_status = loop.time() + self.settings.node_status_interval
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep heartbeating through API errors
                failures += 1
                log.warning("node heartbeat failed", error=repr(exc), failures=failures)
                now = loop.time()
                retry = now + min(10.0, 0.5 * failures)
                # What failed is due again at ``retry``, not at once (else a write that keeps
                # failing is retried in a busy loop); a Lease not yet due is renewed by then.
                next_lease = retry if next_lease <= now else min(next_lease, retry)
                if next_status <= now:
                    next_status = retry


def _pod_cidr(node: dict[str, Any]) -> str:
    return str((node.get("spec") or {}).get("podCIDR") or "")


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k not in ("lastHeartbeatTime",)}
        for c in status.get("conditions") or []
    ]
    return out
