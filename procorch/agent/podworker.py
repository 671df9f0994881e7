"""One pod on this node: its containers' runs, probes, restarts, termination and status.

A :class:`PodWorker` is kubelet's pod worker: one task per pod that wakes on anything relevant
(the pod changed, a container exited, a probe flipped, a back-off expired, a ConfigMap it uses
changed, the periodic resync) and then *syncs*: it reads the pod from the informer cache and
its containers' records, decides what to do from that state alone (level-based), does it, and
writes the status if it changed. Events only set flags and wake the task; they never act.

The sync, in order: a pod that is gone or deleting is terminated (readiness drops first, then
preStop hooks, SIGTERM, the grace period, SIGKILL, volumes removed, the API object deleted);
otherwise volumes are made ready, init containers run one at a time to success, then every app
container runs, restarted per ``restartPolicy`` with CrashLoopBackOff; a liveness failure
restarts a container; ``activeDeadlineSeconds`` ends the pod.

What a worker uses of its node is a :class:`PodHost`, which the agent makes at start: the
client, the runtime, the caches, volumes and IPs, and nothing else of the agent.

Concurrency: everything here runs in the worker's own task, so a pod is never synced twice at
once; callbacks from the runtime and the probers run on the loop and only touch flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procorch.agent import podstatus
from procorch.agent.containers import ContainerRecord, State
from procorch.agent.lookups import CacheLookups
from procorch.agent.poddns import NodeDNS
from procorch.agent.podenv import ConfigError, command_line, container_env
from procorch.agent.podlogs import container_log_path
from procorch.agent.prober import ContainerProbes
from procorch.agent.runtime import probes
from procorch.agent.runtime.api import Runtime
from procorch.agent.runtime.spec import (
    ContainerSpec,
    ContainerState,
    ExitStatus,
    Mount,
    RuntimeError_,
    StartError,
)
from procorch.agent.settings import AgentSettings
from procorch.agent.tokens import Tokens
from procorch.agent.volumes import VolumeManager
from procorch.api import errors
from procorch.api.meta import parse_time, rfc3339
from procorch.api.quantity import bytes_of, cpu_millis
from procorch.api.resources import must
from procorch.api.serviceaccounts import SERVICE_ACCOUNT_DIR
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.kit.backoff import FlowBackoff
from procorch.kit.logging import get_logger

log = get_logger("agent.pod")

PODS = must("core/pods")
CONFIG_RETRY = 2.0
TOKEN_RETRY = 0.2
DEPENDENCIES_CONDITION = "procorch.io/DependenciesReady"


def run_id(uid: str, name: str, attempt: int) -> str:
    return f"{uid}_{name}_{attempt}"


@dataclass(frozen=True)
class PodHost:
    """What a pod worker uses of its node, and nothing else: the agent makes one at start."""

    client: Client
    """For the pod's status, and its deletion once its processes are gone."""
    settings: AgentSettings
    recorder: EventRecorder
    runtime: Runtime
    lookups: CacheLookups
    """The pod as cached, and what it reads and waits for."""
    volumes: VolumeManager
    tokens: Tokens
    """The pods' ServiceAccount tokens (see :mod:`procorch.agent.tokens`)."""
    dns: NodeDNS
    """The pods' resolv.conf, hosts and hostname (see :mod:`procorch.agent.poddns`)."""
    base_env: Mapping[str, str]
    """The environment every container starts from."""
    node_allocatable: Callable[[], Mapping[str, str]]
    allocate_ip: Callable[[dict[str, Any]], str]
    register_run: Callable[[str, PodWorker], None]
    """Send a run's exit and output to its worker: called before the run starts."""
    unregister_run: Callable[[str], None]
    cleanup_pod: Callable[[PodWorker], Awaitable[None]]
    """Release what a terminated pod held: its runs, IP, volumes and logs."""
    background: Callable[[Coroutine[Any, Any, Any]], None]
    """Run a best-effort step owned by the agent (cancelled when it stops)."""


SERVICE_ACCOUNT_DIR_ENV = "PROCORCH_SERVICE_ACCOUNT_DIR"
"""Where a pod finds its ServiceAccount files when they cannot be mounted at their place."""


class PodWorker:
    def __init__(self, host: PodHost, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.host = host
        self.uid = str(meta["uid"])
        self.namespace = str(meta.get("namespace") or "")
        self.name = str(meta["name"])
        self.pod = pod
        spec = pod.get("spec") or {}
        self.init = [
            ContainerRecord(str(c["name"]), init=True, sidecar=(c.get("restartPolicy") == "Always"))
            for c in spec.get("initContainers") or []
        ]
        self.app = [ContainerRecord(str(c["name"])) for c in spec.get("containers") or []]
        self.ephemeral: list[ContainerRecord] = []
        self._add_ephemeral(spec)
        self.probes: dict[str, ContainerProbes] = {}
        self.backoff = FlowBackoff(
            initial=host.settings.crashloop_initial,
            cap=host.settings.crashloop_max,
            reset=host.settings.crashloop_reset,
        )
        self.pod_ip = ""
        self.start_time = str((pod.get("status") or {}).get("startTime") or "") or rfc3339()
        self.volume_paths: dict[str, Any] | None = None
        self.dns_mounts: list[Mount] = []
        self.hostname: str | None = None
        self.dns_ready = False
        self.dns_error = ""
        self.volume_error = ""
        self._token_unmounted_said = False
        self._data_dir_said = False
        self._token_retry = TOKEN_RETRY
        self.live_failures: dict[str, str] = {}  # container -> why liveness failed
        self.adopted: dict[str, ContainerState] = {}  # runs found running at agent start
        self._early_exits: dict[str, ExitStatus] = {}
        self.deps_met = False
        self.deps_message = ""
        self.terminating = False
        self.finished = False
        self.final_phase: str | None = None
        self.final_reason = ""
        self.final_message = ""
        self._last_status: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._wake.set()
        self._next_wake: float | None = None
        self.log = log.bind(pod=f"{self.namespace}/{self.name}")

    # -- lookups -----------------------------------------------------------------------------

    @property
    def records(self) -> tuple[ContainerRecord, ...]:
        """Every container of the pod: init, app, then ephemeral."""
        return (*self.init, *self.app, *self.ephemeral)

    def record(self, name: str) -> ContainerRecord | None:
        for r in self.records:
            if r.name == name:
                return r
        return None

    def spec_of(self, record: ContainerRecord) -> dict[str, Any]:
        spec = self.pod.get("spec") or {}
        for c in spec.get(record.spec_field) or []:
            if c.get("name") == record.name:
                return dict(c)
        return {}

    def _add_ephemeral(self, spec: dict[str, Any]) -> None:
        known = {r.name for r in self.ephemeral}
        for c in spec.get("ephemeralContainers") or []:
            if str(c.get("name")) not in known:
                self.ephemeral.append(ContainerRecord(str(c["name"]), ephemeral=True))

    @property
    def key(self) -> str:
        return f"{self.name}_{self.namespace}({self.uid})"

    # -- wake-ups (callbacks: flags only) ----------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def wake_after(self, seconds: float) -> None:
        due = time.monotonic() + max(0.0, seconds)
        if self._next_wake is None or due < self._next_wake:
            self._next_wake = due

    def on_exit(self, container_id: str, status: ExitStatus) -> None:
        for record in self.records:
            if record.run_id == container_id and record.state is State.RUNNING:
                record.terminate(status)
                if status.reason == "OOMKilled":
                    self.host.recorder.event(
                        self.pod,
                        "Warning",
                        "OOMKilled",
                        f"Container {record.name} was killed: {status.message or 'out of memory'}",
                        field_path=self._field_path(record),
                    )
                self.wake()
                return
        # The exit of a run whose start has not been answered yet (a process that ends at
        # once can beat the start reply from the supervisor): applied when the reply comes.
        self._early_exits[container_id] = status

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        resync = self.host.settings.status_sync_interval
        try:
            while not self.finished:
                timeout = resync
                if self._next_wake is not None:
                    timeout = max(0.0, min(timeout, self._next_wake - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                self._wake.clear()
                if self._next_wake is not None and self._next_wake <= time.monotonic():
                    self._next_wake = None
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad sync must not end the pod
                    self.log.warning("pod sync failed; retrying", error=repr(exc), exc_info=exc)
                    self.wake_after(1.0)
        finally:
            for prober in list(self.probes.values()):
                await prober.stop()
            self.probes.clear()

    async def sync(self) -> None:
        current = self.host.lookups.pod(self.uid)
        if current is None:
            await self.terminate(grace=0, delete=False)
            return
        self.pod = current
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            grace_s = float(grace) if grace is not None else self._grace()
            await self.terminate(grace=grace_s, delete=True)
            return
        if self.final_phase is not None:
            await self._stop_all(grace=self._grace())
            await self.write_status()
            return
        if self._deadline_exceeded():
            self.final_reason = "DeadlineExceeded"
            self.final_message = "Pod was active on the node longer than the specified deadline"
            self.host.recorder.event(current, "Normal", "DeadlineExceeded", self.final_message)
            await self._stop_all(grace=self._grace())
            self.final_phase = "Failed"
            await self.write_status()
            return
        if not self.pod_ip:
            self.pod_ip = self.host.allocate_ip(current)
        if not self._dependencies_ready():
            await self.write_status()
            return
        if not await self._volumes():
            await self.write_status()
            return
        if not self._name_service():
            await self.write_status()
            return
        for name, state in list(self.adopted.items()):
            record = self.record(name)
            if record is not None and record.running and record.run_id == state.id:
                self._start_probes(record, self.spec_of(record), state)
        self.adopted.clear()
        if await self._sync_init():
            await self._sync_app()
            await self._sync_ephemeral()
        await self.write_status()

    # -- dependencies ------------------------------------------------------------------------

    def _dependencies_ready(self) -> bool:
        """``procorch.io/depends-on``: hold the pod (Pending, nothing started) until every
        named Service has a ready endpoint and every named Job has completed. Checked only
        until the pod first starts, as init containers are."""
        if self.deps_met or any(r.ever_ran() for r in (*self.init, *self.app)):
            self.deps_met = True
            return True
        missing = self.host.lookups.unmet_dependencies(self.pod)
        message = "waiting for " + ", ".join(missing) if missing else ""
        if message != self.deps_message:
            self.deps_message = message
            if missing:
                self.host.recorder.event(self.pod, "Normal", "WaitingForDependencies", message)
        if missing:
            return False
        self.deps_met = True
        return True

    # -- volumes -----------------------------------------------------------------------------

    async def _volumes(self) -> bool:
        try:
            await self.host.tokens.ensure(self.pod)
        except (errors.ApiError, OSError) as exc:
            message = f"MountVolume.SetUp failed: failed to fetch token: {exc}"
            if message != self.volume_error:
                self.host.recorder.event(self.pod, "Warning", "FailedMount", message)
                self.volume_error = message
            # A new namespace's default ServiceAccount comes moments after the namespace:
            # look again soon, then less and less often.
            if isinstance(exc, errors.NotFound):
                self.wake_after(self._token_retry)
                self._token_retry = min(self._token_retry * 2, CONFIG_RETRY)
            else:
                self.wake_after(CONFIG_RETRY)
            return False
        self._token_retry = TOKEN_RETRY
        renewal = self.host.tokens.next_renewal(self.uid)
        if renewal is not None:
            self.wake_after(renewal - time.time())
        try:
            self.volume_paths = self.host.volumes.prepare(self.pod)
        except ConfigError as exc:
            message = f"MountVolume.SetUp failed: {exc}"
            if message != self.volume_error:
                self.host.recorder.event(self.pod, "Warning", "FailedMount", message)
                self.volume_error = message
            self.wake_after(CONFIG_RETRY)
            return False
        except OSError as exc:
            message = f"MountVolume.SetUp failed: {exc}"
            if message != self.volume_error:
                self.host.recorder.event(self.pod, "Warning", "FailedMount", message)
                self.volume_error = message
            self.wake_after(CONFIG_RETRY)
            return False
        self.volume_error = ""
        return True

    def _name_service(self) -> bool:
        """The pod's /etc/resolv.conf, /etc/hosts and hostname, made once it has its IP
        (nothing they come from changes in a pod's life)."""
        if self.dns_ready:
            return True
        host = self.host
        try:
            mounts, hostname, warning = host.dns.prepare(
                self.pod, pod_ip=self.pod_ip, pod_dir=host.volumes.pod_dir(self.uid)
            )
        except OSError as exc:
            message = f"could not write the pod's resolv.conf and hosts: {exc}"
            if message != self.dns_error:
                host.recorder.event(self.pod, "Warning", "FailedMount", message)
                self.dns_error = message
            self.wake_after(CONFIG_RETRY)
            return False
        self.dns_mounts, self.hostname, self.dns_error = mounts, hostname, ""
        self.dns_ready = True
        if warning:
            host.recorder.event(self.pod, "Warning", "DNSConfigForming", warning)
        return True

    # -- init containers ---------------------------------------------------------------------

    async def _sync_init(self) -> bool:
        """Run init containers in order; True once every one has succeeded."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for record in self.init:
            if record.sidecar:
                await self._ensure_running(record, restart="Always")
                if not (record.running and record.started):
                    self._app_wait("PodInitializing")
                    return False
                continue
            if record.succeeded:
                continue
            if record.state is State.RUNNING:
                await self._liveness(record)
                self._app_wait("PodInitializing")
                return False
            if record.state is State.TERMINATED and policy == "Never":
                self.final_phase = "Failed"
                await self._stop_all(grace=self._grace())
                return False
            await self._ensure_running(record, restart="OnFailure")
            self._app_wait("PodInitializing")
            return False
        return True

    def _app_wait(self, reason: str) -> None:
        for record in self.app:
            if record.state is State.WAITING and not record.ever_ran():
                record.wait(reason)

    # -- app containers ----------------------------------------------------------------------

    async def _sync_app(self) -> None:
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        for record in self.app:
            await self._ensure_running(record, restart=policy)
        # Sidecars stop once every app container is done for good.
        if self.init and podstatus.phase(self.pod.get("spec") or {}, self.init, self.app) in (
            "Succeeded",
            "Failed",
        ):
            for record in reversed(self.init):
                if record.sidecar and record.running:
                    await self._stop(record, grace=self._grace(), reason="Sidecar done")

    async def _sync_ephemeral(self) -> None:
        """Debug containers (``kubectl debug``): each is started once, while the pod's
        containers run, and never restarted."""
        self._add_ephemeral(self.pod.get("spec") or {})
        if not any(r.running for r in self.app):
            return
        for record in self.ephemeral:
            if record.state is State.WAITING and record.runs == 0 and not record.failed_at:
                await self._start(record)

    async def _ensure_running(self, record: ContainerRecord, *, restart: str) -> None:
        if record.state is State.RUNNING:
            await self._liveness(record)
            return
        now = time.time()
        if record.state is State.TERMINATED:
            assert record.exit is not None
            if restart == "Never" or (restart == "OnFailure" and record.exit.exit_code == 0):
                return
            wait = self.backoff.remaining(record.name, finished_at=record.exit.finished_at, now=now)
            if wait > 0:
                delay = self.backoff.delay(record.name, now)
                record.wait(
                    "CrashLoopBackOff",
                    f"back-off {_duration(delay)} restarting failed container={record.name} "
                    f"pod={self.key}",
                )
                self.host.recorder.event(
                    self.pod,
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {record.name} in pod {self.key}",
                    field_path=self._field_path(record),
                )
                self.wake_after(wait)
                return
            self.backoff.step(record.name, now)
        elif record.reason == "CrashLoopBackOff" and record.last is not None:
            wait = self.backoff.remaining(
                record.name, finished_at=record.last.exit.finished_at, now=now
            )
            if wait > 0:
                self.wake_after(wait)
                return
            self.backoff.step(record.name, now)
        elif record.reason in ("RunContainerError", "CreateContainerConfigError"):
            wait = self.backoff.remaining(record.name, finished_at=record.failed_at, now=now)
            if wait > 0:
                self.wake_after(wait)
                return
        await self._start(record)

    async def _start(self, record: ContainerRecord) -> None:
        container = self.spec_of(record)
        host = self.host
        try:
            env = container_env(
                self.pod,
                container,
                lookups=host.lookups,
                node_name=host.settings.node_name,
                pod_ip=self.pod_ip,
                host_ip=host.settings.node_ip,
                service_env=host.lookups.service_env(self.namespace, self.pod),
                node_allocatable=host.node_allocatable(),
            )
            argv = command_line(container, env)
            mounts = self.dns_mounts + host.volumes.mounts(
                self.pod, self._mount_view(container), self.volume_paths or {}, env=env
            )
            if not host.dns.mounts_possible:
                mounts = self._token_without_mount(mounts, env)
        except ConfigError as exc:
            self._failed_start(record, "CreateContainerConfigError", str(exc))
            return
        attempt = record.runs
        rid = run_id(self.uid, record.name, attempt)
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        security = {
            **((self.pod.get("spec") or {}).get("securityContext") or {}),
            **(container.get("securityContext") or {}),
        }
        spec = ContainerSpec(
            id=rid,
            argv=argv,
            env={**host.base_env, **env},
            log_path=str(
                container_log_path(host.settings.node_dir, self.pod, record.name, attempt)
            ),
            cwd=container.get("workingDir") or None,
            tty=bool(container.get("tty")),
            stdin=bool(container.get("stdin")),
            mounts=mounts,
            hostname=self.hostname,
            masked=self._masked(mounts),
            memory_limit=bytes_of(limits["memory"]) if limits.get("memory") else None,
            cpu_limit_millis=cpu_millis(limits["cpu"]) if limits.get("cpu") else None,
            run_as_user=security.get("runAsUser"),
            run_as_group=security.get("runAsGroup"),
            log_max_bytes=host.settings.log_max_bytes,
            log_max_files=host.settings.log_max_files,
            labels={
                "pod_uid": self.uid,
                "namespace": self.namespace,
                "pod": self.name,
                "container": record.name,
                "attempt": str(attempt),
                "init": "1" if record.init else "",
            },
        )
        host.register_run(rid, self)
        try:
            state = await host.runtime.start(spec)
        except StartError as exc:
            host.unregister_run(rid)
            self._failed_start(record, "RunContainerError", str(exc))
            return
        except RuntimeError_ as exc:
            host.unregister_run(rid)
            self._failed_start(record, "RunContainerError", str(exc))
            return
        record.run(rid, state.started_at)
        early = self._early_exits.pop(rid, None)
        if early is None and state.exit is not None:
            early = state.exit
        if early is not None:
            record.terminate(early)
            self.wake()
        field_path = self._field_path(record)
        host.recorder.event(
            self.pod, "Normal", "Created", f"Created container {record.name}", field_path=field_path
        )
        host.recorder.event(
            self.pod, "Normal", "Started", f"Started container {record.name}", field_path=field_path
        )
        if record.running:
            await self._post_start(record, container)
        if record.running:
            self._start_probes(record, container, state)

    def _masked(self, mounts: list[Mount]) -> list[str]:
        """What the pod's processes must not see: procorch's data dir (its keys, tokens and
        store), also where a hostPath volume shows it (a hostPath of the data dir, of a
        directory holding it, or of something in it). Where no mount namespace is possible,
        nothing, and an event says so, once."""
        data_dir = self.host.settings.data_dir.resolve()
        if not self.host.dns.mounts_possible:
            if not self._data_dir_said:
                self._data_dir_said = True
                self.host.recorder.event(
                    self.pod,
                    "Warning",
                    "DataDirVisible",
                    "the machine allows procorch no private mount namespace (not root, no "
                    f"user namespaces): this pod's processes can read procorch's data dir "
                    f"({data_dir}), its credentials included",
                )
            return []
        managed = (self.host.settings.node_dir / "pods", self.host.settings.node_dir / "pvc")
        masked = [str(data_dir)]
        for mount in mounts:
            source = Path(mount.source).resolve()
            if data_dir == source or data_dir.is_relative_to(source):
                masked.append(str(Path(mount.target) / data_dir.relative_to(source)))
            elif source.is_relative_to(data_dir) and not any(
                source.is_relative_to(root.resolve()) for root in managed
            ):
                masked.append(mount.target)
        return masked

    def _token_without_mount(self, mounts: list[Mount], env: dict[str, str]) -> list[Mount]:
        """Where the machine allows no mount namespace: the ServiceAccount directory is not
        mounted (nothing else would start), its place is in :data:`SERVICE_ACCOUNT_DIR_ENV`,
        and the pod gets an event saying so, once."""
        token = next((m for m in mounts if m.target == SERVICE_ACCOUNT_DIR), None)
        if token is None:
            return mounts
        env[SERVICE_ACCOUNT_DIR_ENV] = token.source
        if not self._token_unmounted_said:
            self._token_unmounted_said = True
            self.host.recorder.event(
                self.pod,
                "Warning",
                "ServiceAccountNotMounted",
                f"the machine allows procorch no private mount namespace (not root, no user "
                f"namespaces): the ServiceAccount token, ca.crt and namespace are in "
                f"${SERVICE_ACCOUNT_DIR_ENV} ({token.source}), not at {SERVICE_ACCOUNT_DIR}",
            )
        return [m for m in mounts if m is not token]

    def _mount_view(self, container: dict[str, Any]) -> dict[str, Any]:
        """The container whose volume mounts a run gets: its own, and for a debug container
        with a target, the target's too (``kubectl debug --target``: it sees what the
        target sees)."""
        target = container.get("targetContainerName")
        if not target:
            return container
        of_target: dict[str, Any] = next(
            (
                c
                for c in (self.pod.get("spec") or {}).get("containers") or []
                if c.get("name") == target
            ),
            {},
        )
        own = list(container.get("volumeMounts") or [])
        paths = {m.get("mountPath") for m in own}
        extra = [m for m in of_target.get("volumeMounts") or [] if m.get("mountPath") not in paths]
        return {**container, "volumeMounts": own + extra}

    def _failed_start(self, record: ContainerRecord, reason: str, message: str) -> None:
        if record.state is not State.WAITING or record.message != message:
            self.host.recorder.event(
                self.pod,
                "Warning",
                "Failed",
                f"Error: {message}",
                field_path=self._field_path(record),
            )
        record.wait(reason, message)
        now = time.time()
        record.failed_at = now
        self.backoff.step(record.name, now)
        self.wake_after(
            max(CONFIG_RETRY, self.backoff.remaining(record.name, finished_at=now, now=now))
        )

    def _start_probes(
        self, record: ContainerRecord, container: dict[str, Any], state: ContainerState
    ) -> None:
        started_mono = time.monotonic() - max(0.0, time.time() - state.started_at)
        rid = record.run_id

        def on_change() -> None:
            prober = self.probes.get(record.name)
            if prober is not None and record.run_id == rid:
                record.started = prober.started
                record.ready = prober.ready
            self.wake()

        def on_liveness_failure(kind: str, message: str) -> None:
            if record.run_id == rid:
                self.live_failures[record.name] = (
                    f"Container {record.name} failed {kind} probe, will be restarted"
                )
                self.wake()

        def on_event(type_: str, reason: str, message: str) -> None:
            self.host.recorder.event(
                self.pod, type_, reason, message, field_path=self._field_path(record)
            )

        async def exec_runner(argv: list[str], timeout: float) -> tuple[int, bytes]:
            result = await self.host.runtime.exec(rid, argv, timeout=timeout)
            return result.exit_code, result.output

        prober = ContainerProbes(
            container=container,
            pod_ip=self.pod_ip,
            started_at=started_mono,
            exec_runner=exec_runner,
            on_change=on_change,
            on_liveness_failure=on_liveness_failure,
            on_event=on_event,
            ready_settle=self.host.settings.ready_settle,
        )
        old = self.probes.pop(record.name, None)
        if old is not None:
            self.host.background(old.stop())
        self.probes[record.name] = prober
        prober.start()
        record.started = prober.started
        record.ready = prober.ready

    async def _liveness(self, record: ContainerRecord) -> None:
        why = self.live_failures.pop(record.name, None)
        if why is None or not record.running:
            return
        self.host.recorder.event(
            self.pod, "Normal", "Killing", why, field_path=self._field_path(record)
        )
        await self._stop(record, grace=self._grace(), reason=why, event=False)

    # -- hooks -------------------------------------------------------------------------------

    async def _hook(
        self, record: ContainerRecord, handler: dict[str, Any], *, timeout: float
    ) -> str:
        """Run a lifecycle handler; an error message, or "" when it succeeded."""
        try:
            async with asyncio.timeout(timeout):
                if "exec" in handler:
                    result = await self.host.runtime.exec(
                        record.run_id, list(handler["exec"].get("command") or []), timeout=timeout
                    )
                    if result.exit_code != 0:
                        return (
                            f"command {' '.join(handler['exec'].get('command') or [])!r} exited "
                            f"with {result.exit_code}: {result.output.decode(errors='replace')}"
                        )
                    return ""
                if "httpGet" in handler:
                    get = handler["httpGet"]
                    port = _resolve_port(get.get("port"), self.spec_of(record))
                    if port is None:
                        return f"unknown port {get.get('port')!r}"
                    outcome = await probes.http_get(
                        scheme=str(get.get("scheme") or "HTTP").lower(),
                        host=str(get.get("host") or self.pod_ip),
                        port=port,
                        path=str(get.get("path") or "/"),
                        headers=[(h["name"], h["value"]) for h in get.get("httpHeaders") or []],
                        timeout=timeout,
                    )
                    return "" if outcome.result == "success" else outcome.message
                if "sleep" in handler:
                    await asyncio.sleep(float(handler["sleep"].get("seconds") or 0))
                    return ""
                return ""
        except TimeoutError:
            return f"hook timed out after {timeout:.0f}s"
        except RuntimeError_ as exc:
            return str(exc)

    async def _post_start(self, record: ContainerRecord, container: dict[str, Any]) -> None:
        handler = (container.get("lifecycle") or {}).get("postStart")
        if not handler:
            return
        error = await self._hook(record, handler, timeout=self._grace() or 30.0)
        if error:
            self.host.recorder.event(
                self.pod,
                "Warning",
                "FailedPostStartHook",
                error,
                field_path=self._field_path(record),
            )
            await self._stop(record, grace=self._grace(), reason="FailedPostStartHook", event=False)

    # -- stopping ----------------------------------------------------------------------------

    def _grace(self) -> float:
        value = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(self.host.settings.termination_grace_default if value is None else value)

    async def _stop(
        self,
        record: ContainerRecord,
        *,
        grace: float,
        reason: str = "",
        event: bool = True,
        deadline: float | None = None,
    ) -> None:
        if not record.running:
            return
        rid = record.run_id
        prober = self.probes.pop(record.name, None)
        if prober is not None:
            await prober.stop()
        if event:
            self.host.recorder.event(
                self.pod,
                "Normal",
                "Killing",
                f"Stopping container {record.name}",
                field_path=self._field_path(record),
            )
        started = time.monotonic()
        handler = (self.spec_of(record).get("lifecycle") or {}).get("preStop")
        if handler and grace > 0:
            error = await self._hook(record, handler, timeout=grace)
            if error:
                self.host.recorder.event(
                    self.pod,
                    "Warning",
                    "FailedPreStopHook",
                    error,
                    field_path=self._field_path(record),
                )
        left = grace - (time.monotonic() - started)
        if deadline is not None:
            left = min(left, deadline - time.monotonic())
        # Kubernetes gives at least 2 s after a preStop hook that used up the grace period.
        left = max(left, 2.0 if handler and grace > 0 else 0.0)
        try:
            status = await self.host.runtime.stop(rid, grace=left, sig=signal.SIGTERM)
        except RuntimeError_ as exc:
            self.log.debug("stop failed", container=record.name, error=str(exc))
            status = ExitStatus(exit_code=137, reason="Error", finished_at=time.time(), signal=9)
        if record.run_id == rid and record.state is State.RUNNING:
            record.terminate(status)
        del reason

    async def _stop_all(self, *, grace: float, deadline: float | None = None) -> None:
        apps = [r for r in (*self.app, *self.ephemeral) if r.running]
        await asyncio.gather(*(self._stop(r, grace=grace, deadline=deadline) for r in apps))
        for record in reversed(self.init):
            if record.running:
                await self._stop(record, grace=grace, deadline=deadline)

    async def terminate(self, *, grace: float, delete: bool) -> None:
        """Stop everything of the pod; then release its IP and volumes and (``delete``) remove
        the API object, which Kubernetes leaves to the node once its processes are gone."""
        first = not self.terminating
        self.terminating = True
        for prober in self.probes.values():
            prober.set_terminating()
        for record in self.records:
            record.ready = False
        deadline = time.monotonic() + grace
        if first and delete:
            # Readiness drops, and the endpoints let go of the pod, before any signal is sent:
            # no new connection reaches a process that is about to stop.
            was_published = self.host.lookups.published(self.pod_ip)
            await self.write_status()
            if was_published and self.pod_ip:
                await self.host.lookups.wait_unpublished(
                    self.pod_ip,
                    timeout=min(self.host.settings.endpoint_drain_timeout, grace),
                )
        await self._stop_all(grace=grace, deadline=deadline)
        for record in self.records:
            if record.state is State.WAITING:
                record.terminate(
                    ExitStatus(exit_code=0, reason="Completed", finished_at=time.time())
                    if not record.ever_ran()
                    else ExitStatus(exit_code=137, reason="Error", finished_at=time.time())
                )
        if delete:
            if self.final_phase is None:
                self.final_phase = "Succeeded" if all(r.succeeded for r in self.app) else "Failed"
            with contextlib.suppress(errors.ApiError):
                await self.write_status()
        await self.host.cleanup_pod(self)
        if delete:
            try:
                await self.host.client.delete(
                    PODS, self.name, namespace=self.namespace, grace_period_seconds=0, uid=self.uid
                )
            except (errors.NotFound, errors.Conflict):
                pass
        self.finished = True

    # -- status ------------------------------------------------------------------------------

    async def write_status(self) -> None:
        if self.host.lookups.pod(self.uid) is None:
            return
        status = podstatus.build(
            self.pod,
            init=self.init,
            app=self.app,
            ephemeral=self.ephemeral,
            pod_ip=self.pod_ip,
            host_ip=self.host.settings.node_ip,
            start_time=self.start_time,
            sandbox_ready=bool(self.pod_ip) and not self.volume_error,
            terminating=self.terminating,
            pod_phase=self.final_phase,
        )
        if self.deps_message:
            status["conditions"] = [
                c for c in status["conditions"] if c.get("type") != DEPENDENCIES_CONDITION
            ] + [
                {
                    "type": DEPENDENCIES_CONDITION,
                    "status": "False",
                    "reason": "WaitingForDependencies",
                    "message": self.deps_message,
                    "lastProbeTime": None,
                    "lastTransitionTime": _since(self.pod, DEPENDENCIES_CONDITION, "False"),
                }
            ]
        elif any(
            c.get("type") == DEPENDENCIES_CONDITION
            for c in (self.pod.get("status") or {}).get("conditions") or []
        ):
            status["conditions"] = [
                c for c in status["conditions"] if c.get("type") != DEPENDENCIES_CONDITION
            ] + [
                {
                    "type": DEPENDENCIES_CONDITION,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": _since(self.pod, DEPENDENCIES_CONDITION, "True"),
                }
            ]
        if self.final_phase == "Failed" and self.final_reason:
            status["reason"] = self.final_reason
            status["message"] = self.final_message
        if self._last_status is not None and podstatus.same_status(self._last_status, status):
            return
        current = self.pod.get("status") or {}
        if self._last_status is None and podstatus.same_status(current, status):
            self._last_status = status
            return
        try:
            await self.host.client.patch(
                PODS,
                self.name,
                {"metadata": {"uid": self.uid}, "status": status},
                namespace=self.namespace,
                subresource="status",
            )
        except errors.NotFound:
            return
        self._last_status = status

    # -- helpers -----------------------------------------------------------------------------

    def _field_path(self, record: ContainerRecord) -> str:
        return f"spec.{record.spec_field}{{{record.name}}}"

    def _deadline_exceeded(self) -> bool:
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is None:
            return False
        started = parse_time(self.start_time)
        if started is None:
            return False
        elapsed = time.time() - started.timestamp()
        if elapsed >= float(deadline):
            return True
        self.wake_after(float(deadline) - elapsed)
        return False


def _since(pod: dict[str, Any], ctype: str, status: str) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == status:
            return str(cond.get("lastTransitionTime") or rfc3339())
    return rfc3339()


def _duration(seconds: float) -> str:
    """Go's duration format as kubelet prints back-off delays: 10s, 1m20s, 5m0s."""
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    return f"{total // 60}m{total % 60}s"


def _resolve_port(port: Any, container: dict[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p.get("containerPort") or 0) or None
    return None
