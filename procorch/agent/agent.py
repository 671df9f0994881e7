"""The node agent (procorch's kubelet): runs the pods bound to its node as processes.

It is an API client like every other component: it registers its Node and keeps a heartbeat
Lease, reads the pods whose ``spec.nodeName`` is its node (plus the ConfigMaps, Secrets,
claims and Services they use) through views of the process's informers
(:class:`~procorch.reconcile.factory.InformerFactory`), runs one
:class:`~procorch.agent.podworker.PodWorker` per pod, and writes pod status. Containers run in the node's container runtime
(:mod:`procorch.agent.runtime`), by default a supervisor process that survives an agent crash:
a restarted agent *adopts* the runs it finds there (never a duplicate) and stops the runs of
pods that no longer exist (never an orphan). It serves container logs and resource usage to
the API server over a small HTTP endpoint (:mod:`procorch.agent.server`).

Start: runtime → endpoint → Node → informers synced → adoption → pod workers, heartbeat,
metrics.
Stop (graceful): every pod is terminated as if deleted (preStop, SIGTERM, grace, SIGKILL) with
its final status written, then the runtime is shut down. Stop (``graceful=False``, used when
the agent's process is about to die anyway): containers are left to the supervisor process.

Concurrency: single event loop; each pod worker is its own task; everything is owned by the
agent's :class:`~procorch.kit.tasks.TaskSet` and stopped in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psutil

from procorch.agent.containers import FinishedRun, State
from procorch.agent.ipam import PodIPAllocator
from procorch.agent.lookups import CacheLookups
from procorch.agent.node import NodeManager
from procorch.agent.poddns import NodeDNS
from procorch.agent.podlogs import pod_log_dir
from procorch.agent.podworker import PodHost, PodWorker
from procorch.agent.runtime.api import LocalRuntime, Runtime
from procorch.agent.runtime.shimclient import ShimRuntime
from procorch.agent.runtime.spec import ContainerState, ExitStatus, RuntimeError_, Stats
from procorch.agent.runtime.supervisor import MOUNTS_POSSIBLE, SupervisorConfig
from procorch.agent.server import KubeletServer
from procorch.agent.settings import AgentSettings
from procorch.agent.tokens import Tokens
from procorch.agent.volumes import VolumeManager
from procorch.api.meta import parse_time
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.kit.logging import get_logger
from procorch.kit.tasks import TaskSet
from procorch.reconcile.factory import InformerFactory

log = get_logger("agent")

PODS = must("core/pods")
CONFIGMAPS = must("core/configmaps")
SECRETS = must("core/secrets")
CLAIMS = must("core/persistentvolumeclaims")
SERVICES = must("core/services")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")
JOBS = must("batch/jobs")


def _scope(settings: AgentSettings) -> str:
    digest = hashlib.sha256(f"{settings.data_dir.resolve()}|{settings.node_name}".encode())
    return f"procorch-{digest.hexdigest()[:12]}"


class Agent:
    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        settings: AgentSettings,
        *,
        events: EventRecorder,
        on_crash: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.tasks = TaskSet(f"agent/{settings.node_name}", on_crash=on_crash)
        self.recorder = events.for_component("kubelet", host=settings.node_name)
        self._runtime: Runtime | None = None
        self.server = KubeletServer(self, host=settings.kubelet_host, port=settings.kubelet_port)
        self.node: NodeManager = NodeManager(client, settings, kubelet_port=0)
        self.pods = informers.get(PODS, field_selector=f"spec.nodeName={settings.node_name}")
        self.config_maps = informers.get(CONFIGMAPS)
        self.secrets = informers.get(SECRETS)
        self.claims = informers.get(CLAIMS)
        self.services = informers.get(SERVICES)
        self.endpoint_slices = informers.get(ENDPOINT_SLICES)
        self.jobs = informers.get(JOBS)
        self.lookups = CacheLookups(
            pods=self.pods,
            config_maps=self.config_maps,
            secrets=self.secrets,
            claims=self.claims,
            services=self.services,
            endpoint_slices=self.endpoint_slices,
            jobs=self.jobs,
        )
        self.tokens = Tokens(client)
        self.volumes = VolumeManager(settings.node_dir, self.lookups, tokens=self.tokens)
        self.ipam = PodIPAllocator(settings.pod_cidr)
        self.workers: dict[str, PodWorker] = {}
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, PodWorker] = {}
        self._stats: dict[str, tuple[Stats, Stats | None]] = {}  # run id -> (latest, previous)
        self._node_samples: list[tuple[float, float, int]] = []  # (time, busy s, used bytes)
        self._background: set[asyncio.Task[Any]] = set()
        self._output_listeners: list[Callable[[PodWorker, str, str, bytes], None]] = []
        self.base_env = {k: v for k, v in os.environ.items() if k != "PROCORCH_CONTAINER_ID"}
        self.started = False
        self.runtime_description: dict[str, str] = {}
        self._host: PodHost | None = None
        """What the pod workers use of the agent, from start on."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        settings.node_dir.mkdir(parents=True, exist_ok=True)
        self._runtime = await self._connect_runtime()
        self.runtime_description = await self.runtime.describe()
        if self.runtime_description.get("mounts") != MOUNTS_POSSIBLE:
            log.warning(
                "pods can read procorch's data dir: the machine allows no private mount "
                "namespace to hide it (not root, no user namespaces)",
                data_dir=str(settings.data_dir),
            )
        elif os.geteuid() == 0:
            log.info(
                "procorch runs as root: its data dir is hidden from pods, but a pod process "
                "running as root could still reach it; give pods securityContext.runAsUser",
                data_dir=str(settings.data_dir),
            )
        port = await self.server.start()
        self.node = NodeManager(self.client, settings, kubelet_port=port)
        self.node.extra_annotations = {
            **settings.node_annotations,
            **{f"procorch.io/runtime-{k}": v for k, v in self.runtime_description.items()},
        }
        await self.node.register()
        self.ipam = PodIPAllocator(settings.pod_cidr)
        self._host = PodHost(
            client=self.client,
            settings=settings,
            recorder=self.recorder,
            runtime=self.runtime,
            lookups=self.lookups,
            volumes=self.volumes,
            tokens=self.tokens,
            dns=NodeDNS.load(
                cluster_dns=settings.cluster_dns,
                domain=settings.cluster_domain,
                resolv_conf=settings.resolv_conf,
                mounts_possible=self.runtime_description.get("mounts") == MOUNTS_POSSIBLE,
            ),
            base_env=self.base_env,
            node_allocatable=lambda: self.node.allocatable,
            allocate_ip=self.allocate_ip,
            register_run=self.register_run,
            unregister_run=self.unregister_run,
            cleanup_pod=self.cleanup_pod,
            background=self.background,
        )
        await asyncio.gather(
            *(i.synced.wait() for i in (self.pods, self.config_maps, self.secrets, self.claims))
        )
        for pod in self.pods.list():
            ip = (pod.get("status") or {}).get("podIP")
            if ip and not (pod.get("spec") or {}).get("hostNetwork"):
                self.ipam.reserve(str(ip), str(pod["metadata"]["uid"]))
        await self._adopt()
        self.pods.add_handler(self._on_pod)
        for view in (self.config_maps, self.secrets, self.claims):
            view.add_handler(self._on_dependency)
        self.endpoint_slices.add_handler(self._on_dependency_state)
        self.jobs.add_handler(self._on_dependency_state)
        self.tasks.start("node", self.node.run())
        self.tasks.start("metrics", self._sample_metrics())
        self.started = True
        log.info(
            "node agent ready",
            node=settings.node_name,
            pods=len(self.workers),
            endpoint=f"{settings.kubelet_host}:{port}",
        )

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError_("the agent has not started")
        return self._runtime

    async def _connect_runtime(self) -> Runtime:
        settings = self.settings
        scope = _scope(settings)
        runtime: Runtime
        if settings.runtime == "inprocess":
            runtime = LocalRuntime(SupervisorConfig(scope=scope, cgroups=settings.cgroups))
        else:
            shim = ShimRuntime(
                socket_path=settings.node_dir / "supervisor.sock",
                scope=scope,
                log_path=settings.node_dir / "supervisor.log",
                cgroups=settings.cgroups,
                orphan_timeout=settings.orphan_timeout,
            )
            await shim.connect()
            runtime = shim
        runtime.on_exit(self._on_exit)
        runtime.on_output(self._on_output)
        runtime.on_lost(self._on_runtime_lost)
        return runtime

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop the agent; ``graceful`` terminates every pod first (in parallel, each within
        its grace period and at most ``shutdown_grace``)."""
        if graceful and self.workers:
            log.info("stopping pods", count=len(self.workers))
            grace = self.settings.shutdown_grace
            workers = list(self.workers.values())
            # Dependents first (pods that declared procorch.io/depends-on), then the rest.
            waves = [
                [w for w in workers if _depends(w.pod)],
                [w for w in workers if not _depends(w.pod)],
            ]
            for wave in waves:
                await asyncio.gather(
                    *(self._shutdown_pod(w, grace) for w in wave), return_exceptions=True
                )
        for task in list(self._worker_tasks.values()):
            task.cancel()
        await asyncio.gather(*self._worker_tasks.values(), return_exceptions=True)
        self._worker_tasks.clear()
        if graceful:
            await self.node.mark_not_ready()
        await self.recorder.flush(timeout=1.0)
        for view in (
            self.pods,
            self.config_maps,
            self.secrets,
            self.claims,
            self.services,
            self.endpoint_slices,
            self.jobs,
        ):
            view.close()
        await self.tasks.stop(timeout=5.0)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._runtime is not None:
            await self._runtime.close(grace=self.settings.shutdown_grace, stop_containers=graceful)
        await self.server.stop()
        self.started = False

    async def _shutdown_pod(self, worker: PodWorker, cap: float) -> None:
        task = self._worker_tasks.get(worker.uid)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        grace = min(worker._grace(), cap)  # noqa: SLF001 - the worker's own policy
        await worker._stop_all(grace=grace)  # noqa: SLF001
        with contextlib.suppress(Exception):
            await worker.write_status()

    # -- adoption ----------------------------------------------------------------------------

    async def _adopt(self) -> None:
        """Match what the runtime runs to the pods bound here; stop what matches nothing."""
        states = await self.runtime.list()
        by_pod: dict[str, list[ContainerState]] = {}
        for st in states:
            by_pod.setdefault(st.labels.get("pod_uid", ""), []).append(st)
        adopted = 0
        for pod in self.pods.list():
            uid = str(pod["metadata"]["uid"])
            phase = (pod.get("status") or {}).get("phase")
            runs = by_pod.pop(uid, [])
            if phase in ("Succeeded", "Failed") and not any(r.running for r in runs):
                for st in runs:
                    await self._forget_run(st.id)
                continue
            worker = self._make_worker(pod)
            adopted += self._restore(worker, pod, runs)
            self._start_worker(worker)
        for runs in by_pod.values():
            for st in runs:
                log.info("stopping a container of a pod that is gone", container=st.id)
                with contextlib.suppress(RuntimeError_):
                    if st.running:
                        await self.runtime.stop(st.id, grace=2.0)
                await self._forget_run(st.id)
        if adopted:
            log.info("adopted running containers", count=adopted)

    def _restore(self, worker: PodWorker, pod: dict[str, Any], runs: list[ContainerState]) -> int:
        status = pod.get("status") or {}
        worker.pod_ip = str(status.get("podIP") or "")
        api = {
            str(cs.get("name")): cs
            for cs in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
                *(status.get("ephemeralContainerStatuses") or []),
            ]
        }
        adopted = 0
        for record in worker.records:
            mine = sorted(
                (r for r in runs if r.labels.get("container") == record.name),
                key=lambda r: int(r.labels.get("attempt") or 0),
            )
            for old in mine[:-1]:
                self.background(self._forget_run(old.id))
            latest = mine[-1] if mine else None
            last = _api_last(api.get(record.name))
            if latest is not None:
                attempt = int(latest.labels.get("attempt") or 0)
                if latest.running:
                    record.adopt(latest.id, latest.started_at, restart_count=attempt)
                    record.last = last
                    self.register_run(latest.id, worker)
                    worker.adopted[record.name] = latest
                    adopted += 1
                else:
                    assert latest.exit is not None
                    record.restore(
                        restart_count=attempt,
                        exit_=latest.exit,
                        run_id=latest.id,
                        started_at=latest.started_at,
                        last=last,
                    )
                continue
            cs = api.get(record.name)
            if cs is None:
                continue
            restarts = int(cs.get("restartCount") or 0)
            state = cs.get("state") or {}
            exit_: ExitStatus | None = None
            run_id = str(cs.get("containerID") or "").removeprefix("procorch://")
            started = None
            if "terminated" in state:
                exit_ = _exit_from_api(state["terminated"])
                started = _ts(state["terminated"].get("startedAt"))
            elif "running" in state:
                # The process was lost with the previous runtime (procorch crashed and its
                # supervisor timed out, or the machine rebooted).
                exit_ = ExitStatus(
                    exit_code=137,
                    reason="Error",
                    finished_at=time.time(),
                    message="the container's process was lost when procorch stopped",
                )
                started = _ts(state["running"].get("startedAt"))
            elif cs.get("lastState", {}).get("terminated"):
                pass
            else:
                continue
            record.restore(
                restart_count=restarts,
                exit_=exit_,
                run_id=run_id,
                started_at=started,
                last=last,
            )
        if status.get("phase") in ("Succeeded", "Failed"):
            worker.final_phase = str(status["phase"])
        return adopted

    async def _forget_run(self, container_id: str) -> None:
        if self._runtime is None:
            return
        with contextlib.suppress(RuntimeError_):
            await self.runtime.remove(container_id)

    # -- workers -----------------------------------------------------------------------------

    def _make_worker(self, pod: dict[str, Any]) -> PodWorker:
        assert self._host is not None, "pod workers are made once the agent has started"
        worker = PodWorker(self._host, pod)
        self.workers[worker.uid] = worker
        return worker

    def _start_worker(self, worker: PodWorker) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run_worker(worker), name=f"pod/{worker.namespace}/{worker.name}"
        )
        self._worker_tasks[worker.uid] = task

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            if self.workers.get(worker.uid) is worker and worker.finished:
                self.workers.pop(worker.uid, None)
                self._worker_tasks.pop(worker.uid, None)

    def _on_pod(self, etype: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        uid = str(pod["metadata"].get("uid") or "")
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake()
            return
        if etype == "DELETED":
            self.background(self._cleanup_unknown(uid))
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            return
        worker = self._make_worker(pod)
        if phase in ("Succeeded", "Failed"):
            worker.final_phase = str(phase)
        self._start_worker(worker)

    def _on_dependency(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        namespace = obj["metadata"].get("namespace")
        for worker in self.workers.values():
            if worker.namespace == namespace:
                worker.wake()

    def _on_dependency_state(
        self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """A Service's endpoints or a Job changed: wake the pods still waiting on one."""
        for worker in self.workers.values():
            if worker.deps_message:
                worker.wake()

    async def _cleanup_unknown(self, uid: str) -> None:
        self.volumes.cleanup(uid)
        self.ipam.release(uid)

    def worker_for(self, namespace: str, name: str) -> PodWorker | None:
        pod = self.pods.get(name, namespace)
        if pod is None:
            return None
        return self.workers.get(str(pod["metadata"]["uid"]))

    def allocate_ip(self, pod: dict[str, Any]) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.settings.node_ip
        uid = str(pod["metadata"]["uid"])
        existing = (pod.get("status") or {}).get("podIP")
        if existing and self.ipam.reserve(str(existing), uid):
            return str(existing)
        return self.ipam.allocate(uid)

    async def cleanup_pod(self, worker: PodWorker) -> None:
        """Release what a terminated pod held: its runs in the runtime, IP, volumes, logs."""
        for record in worker.records:
            ids = {record.run_id} | ({record.last.run_id} if record.last else set())
            for rid in ids:
                if rid:
                    self.unregister_run(rid)
                    self._stats.pop(rid, None)
                    await self._forget_run(rid)
        self.ipam.release(worker.uid)
        self.volumes.cleanup(worker.uid)
        self.tokens.forget(worker.uid)
        shutil.rmtree(pod_log_dir(self.settings.node_dir, worker.pod), ignore_errors=True)

    # -- runtime events ----------------------------------------------------------------------

    def on_output(self, listener: Callable[[PodWorker, str, str, bytes], None]) -> None:
        """Receive every container's output as it is produced: (pod worker, container name,
        stream, bytes). For ``procorch up``'s live view; start it with :meth:`follow_output`."""
        self._output_listeners.append(listener)

    async def follow_output(self, enabled: bool = True) -> None:
        await self.runtime.follow_output(enabled)

    def _on_output(self, container_id: str, stream: str, data: bytes) -> None:
        worker = self._runs.get(container_id)
        if worker is None:
            return
        container = container_id[len(worker.uid) + 1 :].rsplit("_", 1)[0]
        for listener in list(self._output_listeners):
            try:
                listener(worker, container, stream, data)
            except Exception:  # noqa: BLE001 - a viewer must never break the agent
                log.exception("output listener failed")

    def register_run(self, run_id: str, worker: PodWorker) -> None:
        self._runs[run_id] = worker

    def unregister_run(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    def _on_exit(self, container_id: str, status: ExitStatus) -> None:
        worker = self._runs.get(container_id)
        if worker is not None:
            worker.on_exit(container_id, status)

    def _on_runtime_lost(self, reason: str) -> None:
        if not self.started:
            return
        self.background(self._recover_runtime(reason))

    async def _recover_runtime(self, reason: str) -> None:
        """The supervisor process died: every container with it. Start a new one and let the
        pod workers restart what should run (their runs are now exits)."""
        log.error("container runtime lost; reconnecting", reason=reason)
        now = time.time()
        for worker in self.workers.values():
            for record in worker.records:
                if record.state is State.RUNNING:
                    record.terminate(
                        ExitStatus(
                            exit_code=137,
                            reason="Error",
                            finished_at=now,
                            message="the node's container supervisor process died",
                        )
                    )
            worker.wake()
        assert isinstance(self.runtime, ShimRuntime)
        for attempt in range(20):
            try:
                await self.runtime.connect()
                return
            except (RuntimeError_, OSError, TimeoutError) as exc:
                log.warning("could not restart the container runtime", error=str(exc))
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a best-effort cleanup step owned by the agent (cancelled on stop)."""
        task = asyncio.get_running_loop().create_task(coro, name="agent/background")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- metrics -----------------------------------------------------------------------------

    async def _sample_metrics(self) -> None:
        psutil.cpu_percent(interval=None)
        while True:
            try:
                await self.sample_once()
            except OSError as exc:
                # Best effort: /proc can be unreadable for a moment (no descriptor left while
                # a flood of connections holds them); a sample missed must not stop procorch.
                log.warning("could not sample the node's metrics", error=str(exc))
            await asyncio.sleep(self.settings.metrics_interval)

    async def sample_once(self) -> None:
        if self._runtime is None:
            return
        try:
            fresh = await self.runtime.stats()
        except RuntimeError_:
            return
        for rid, sample in fresh.items():
            previous = self._stats.get(rid)
            self._stats[rid] = (sample, previous[0] if previous else None)
        for rid in [r for r in self._stats if r not in fresh]:
            del self._stats[rid]
        cpu_times = psutil.cpu_times()
        busy = sum(cpu_times) - cpu_times.idle - getattr(cpu_times, "iowait", 0.0)
        mem = psutil.virtual_memory()
        self._node_samples = [
            *self._node_samples[-1:],
            (time.time(), busy, mem.total - mem.available),
        ]

    def node_summary(self) -> dict[str, Any]:
        cores = 0
        memory = 0
        if self._node_samples:
            memory = self._node_samples[-1][2]
        if len(self._node_samples) == 2:
            (t0, b0, _), (t1, b1, _) = self._node_samples
            if t1 > t0:
                cores = int((b1 - b0) / (t1 - t0) * 1e9)
        return {
            "nodeName": self.settings.node_name,
            "cpu": {"usageNanoCores": max(0, cores)},
            "memory": {"workingSetBytes": memory},
        }

    def usage(self, run_id: str) -> tuple[int, int] | None:
        """(CPU nanocores averaged over the last sampling interval, working set bytes)."""
        entry = self._stats.get(run_id)
        if entry is None:
            return None
        latest, previous = entry
        cores = 0
        if previous is not None and latest.timestamp > previous.timestamp:
            cores = int(
                (latest.cpu_usage_ns - previous.cpu_usage_ns)
                / (latest.timestamp - previous.timestamp)
            )
        return max(0, cores), latest.memory_bytes


def _depends(pod: dict[str, Any]) -> bool:
    return bool(
        ((pod.get("metadata") or {}).get("annotations") or {}).get("procorch.io/depends-on")
    )


def _ts(value: Any) -> float | None:
    parsed = parse_time(str(value)) if value else None
    return parsed.timestamp() if parsed else None


def _exit_from_api(term: dict[str, Any]) -> ExitStatus:
    reason = str(term.get("reason") or "Error")
    if reason not in ("Completed", "Error", "OOMKilled"):
        reason = "Error"
    return ExitStatus(
        exit_code=int(term.get("exitCode") or 0),
        reason=reason,  # type: ignore[arg-type]
        finished_at=_ts(term.get("finishedAt")) or time.time(),
        signal=term.get("signal"),
        message=str(term.get("message") or ""),
    )


def _api_last(cs: dict[str, Any] | None) -> FinishedRun | None:
    if not cs:
        return None
    term = (cs.get("lastState") or {}).get("terminated")
    if not term:
        return None
    return FinishedRun(
        run_id=str(term.get("containerID") or "").removeprefix("procorch://"),
        started_at=_ts(term.get("startedAt")) or 0.0,
        exit=_exit_from_api(term),
    )
