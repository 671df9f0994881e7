"""The scheduler: binds each pending pod to a node, as kube-scheduler does.

It reads pods and nodes through views of the process's informers, keeps a :class:`SchedulerCache`
of what every node already carries, and feeds a :class:`SchedulingQueue` with the pods it
is responsible for: no ``spec.nodeName``, not being deleted, not finished,
``spec.schedulerName`` empty or its own name, and no ``spec.schedulingGates``.

One pod at a time, the loop takes the next pod from the queue and decides, without
awaiting anything, which node it goes to (:mod:`.filters`, then :mod:`.scoring`). A fitting
pod is *assumed* onto its node in the cache at once and its binding (``POST
pods/{name}/binding``) is written by a task of its own, so decisions for the next pods do
not wait for the API; at most ``parallel_bindings`` bindings are in flight. A binding that
fails is forgotten and the pod retried after backoff. A pod no node can take stays
Pending: the scheduler sets its ``PodScheduled`` condition to ``False``/``Unschedulable``
with kube-scheduler's message and records a ``FailedScheduling`` Warning event, both only
when the message changed, and retries the pod when a node is added or changes, a pod is
deleted or finishes, the pod itself changes, or ``unschedulable_retry_interval`` passes.

Concurrency: single event loop. :meth:`Scheduler.run` owns every task it starts (the loop,
the bindings) in a :class:`TaskSet`, and stops them all when it is cancelled, then closes its
informer views and re-raises. Informer handlers only update the cache and the queue; they never
await. The cache and queue are never read and written across an ``await``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from procorch.api import errors
from procorch.api.meta import rfc3339
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.kit.logging import get_logger
from procorch.kit.tasks import TaskSet
from procorch.reconcile.factory import InformerFactory
from procorch.scheduler.cache import TERMINAL_PHASES, SchedulerCache
from procorch.scheduler.filters import (
    failure_message,
    filter_node,
    pod_constraints,
    relate_to_others,
)
from procorch.scheduler.queue import Key, QueueClosed, SchedulingQueue
from procorch.scheduler.scoring import relative_scores, select_node
from procorch.scheduler.settings import SchedulerSettings

PODS = must("core/pods")
NODES = must("core/nodes")
NAMESPACES = must("core/namespaces")

POD_SCHEDULED = "PodScheduled"
UNSCHEDULABLE = "Unschedulable"


@dataclass(frozen=True)
class _Binding:
    pod: dict[str, Any]
    node: str


@dataclass(frozen=True)
class _Unschedulable:
    pod: dict[str, Any]
    message: str


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _priority(pod: Mapping[str, Any]) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return value if isinstance(value, int) else 0


def _created(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def _scheduled_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == POD_SCHEDULED:
            return cond
    return None


def _spec_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a pod update can change where it fits (status-only updates cannot)."""
    if old is None:
        return True
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") != new.get("spec") or old_meta.get("ownerReferences") != new_meta.get(
        "ownerReferences"
    )


class Scheduler:
    """Binds pending pods to nodes; see the module docstring for the whole story."""

    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        *,
        name: str = "default-scheduler",
        events: EventRecorder | None = None,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.events = events.for_component(name) if events is not None else None
        self.settings = settings or SchedulerSettings()
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(
            initial_backoff=self.settings.pod_initial_backoff,
            max_backoff=self.settings.pod_max_backoff,
            retry_interval=self.settings.unschedulable_retry_interval,
        )
        self.pods = informers.get(PODS)
        self.nodes = informers.get(NODES)
        # Pod affinity terms' namespaceSelector matches namespaces by their labels.
        self.namespaces = informers.get(NAMESPACES)
        self.log = get_logger("scheduler").bind(scheduler=name)
        self._rng = random.Random()
        # uid -> the Unschedulable message this scheduler last wrote, so a retry that comes
        # to the same conclusion before the informer shows the write does not repeat it.
        self._reported: dict[str, str] = {}
        # Unschedulable pods that other pods' placement decides (affinity, spread): tried
        # again when a pod is bound or its labels change.
        self._waiting_for_pods: set[Key] = set()
        self._tasks: TaskSet | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled. Raises if one of its tasks fails."""
        if self._tasks is not None:
            raise RuntimeError("Scheduler.run() may be called only once")
        failures: list[tuple[str, BaseException | None]] = []
        failed = asyncio.Event()

        def on_crash(task: str, exc: BaseException | None) -> None:
            failures.append((task, exc))
            failed.set()

        tasks = self._tasks = TaskSet(f"scheduler:{self.name}", on_crash=on_crash)
        self.nodes.add_handler(self._on_node)
        self.pods.add_handler(self._on_pod)
        try:
            tasks.start("loop", self._loop())
            await failed.wait()
            task, exc = failures[0]
            raise RuntimeError(f"scheduler task {task} failed") from exc
        finally:
            self.queue.close()
            await tasks.stop(timeout=5.0)
            self.nodes.close()
            self.pods.close()
            self.namespaces.close()

    async def _loop(self) -> None:
        await asyncio.gather(
            self.nodes.synced.wait(), self.pods.synced.wait(), self.namespaces.synced.wait()
        )
        self.log.debug("caches synced; scheduling", nodes=len(self.nodes), pods=len(self.pods))
        slots = asyncio.Semaphore(self.settings.parallel_bindings)
        while True:
            # Take a binding slot before the pod, so that nothing is awaited between taking
            # the pod off the queue and deciding where it goes.
            await slots.acquire()
            try:
                key = await self.queue.pop()
            except QueueClosed:
                slots.release()
                return
            except BaseException:
                slots.release()
                raise
            try:
                outcome = self._decide(key)
            except Exception as exc:  # noqa: BLE001 - one bad pod must not stop scheduling
                slots.release()
                self.queue.backoff(key)
                self.log.warning("scheduling attempt failed", pod="/".join(key), error=repr(exc))
                continue
            if isinstance(outcome, _Binding):
                assert self._tasks is not None
                self._tasks.start(
                    f"bind:{key[0]}/{key[1]}", self._bind(outcome, slots), forever=False
                )
                continue
            slots.release()
            if outcome is not None:
                await self._report_unschedulable(outcome)

    # -- one decision ------------------------------------------------------------------------

    def responsible_for(self, pod: Mapping[str, Any]) -> bool:
        """Whether this scheduler should bind ``pod`` (ignoring whether it is bound)."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        return bool(
            not meta.get("deletionTimestamp")
            and spec.get("schedulerName") in (None, "", self.name)
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
            and not spec.get("schedulingGates")
        )

    def _namespace_labels(self, namespace: str) -> Mapping[str, str]:
        ns = self.namespaces.get(namespace)
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        # Every namespace carries its name as a label (the API server sets it).
        return {**labels, "kubernetes.io/metadata.name": namespace}

    def _decide(self, key: Key) -> _Binding | _Unschedulable | None:
        """Filter and score the nodes for the pod at ``key`` (read fresh from the cache) and
        settle it in the queue. Synchronous: the cache cannot change underneath."""
        pod = self.pods.get(key[1], key[0])
        if (
            pod is None
            or (pod.get("spec") or {}).get("nodeName")
            or not self.responsible_for(pod)
            or self.cache.is_assumed(_uid(pod))
        ):
            self.queue.remove(key)
            return None
        constraints = pod_constraints(pod)
        nodes = self.cache.nodes()
        others = relate_to_others(
            constraints,
            nodes,
            self.cache.placed(),
            self.cache.anti_affinity_holders.values(),
            namespace_labels=self._namespace_labels,
        )
        feasible = []
        rejections = []
        for info in nodes:
            reasons = filter_node(constraints, info, others)
            if reasons:
                rejections.append(reasons)
            else:
                feasible.append(info)
        if not feasible:
            self.queue.unschedulable(key)
            if others is not None:
                # Another pod's arrival can make room here (affinity, spread).
                self._waiting_for_pods.add(key)
            return _Unschedulable(pod, failure_message(len(nodes), rejections))
        relative = relative_scores(
            constraints,
            feasible,
            nodes,
            self.cache.placed(),
            self.cache.preference_holders.values(),
            namespace_labels=self._namespace_labels,
        )
        chosen = select_node(constraints, feasible, self._rng, relative)
        self.cache.assume(pod, chosen.name)
        self.queue.remove(key)
        return _Binding(pod, chosen.name)

    async def _bind(self, binding: _Binding, slots: asyncio.Semaphore) -> None:
        pod, node = binding.pod, binding.node
        namespace, name = key = _key(pod)
        uid = _uid(pod)
        try:
            await self.client.bind(namespace, name, node)
        except asyncio.CancelledError:
            self.cache.forget(uid)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: undo, retry later
            self._binding_failed(key, uid, exc)
        else:
            self._reported.pop(uid, None)
            self.log.debug("bound", namespace=namespace, pod=name, node=node)
            if self.events is not None:
                self.events.event(
                    pod,
                    "Normal",
                    "Scheduled",
                    f"Successfully assigned {namespace}/{name} to {node}",
                )
        finally:
            slots.release()

    def _binding_failed(self, key: Key, uid: str, exc: Exception) -> None:
        if self.cache.forget(uid):
            self.queue.move_all()  # what it had reserved is free again
        current = self.pods.get(key[1], key[0])
        pending = (
            current is not None
            and _uid(current) == uid
            and not (current.get("spec") or {}).get("nodeName")
            and self.responsible_for(current)
        )
        quiet = isinstance(exc, errors.NotFound | errors.Conflict)
        (self.log.debug if quiet else self.log.warning)(
            "binding failed", namespace=key[0], pod=key[1], error=str(exc) or repr(exc)
        )
        if pending and current is not None:
            self.queue.backoff(key, priority=_priority(current), created=_created(current))

    async def _report_unschedulable(self, outcome: _Unschedulable) -> None:
        """Set PodScheduled=False and record FailedScheduling, unless already said."""
        pod, message = outcome.pod, outcome.message
        namespace, name = _key(pod)
        uid = _uid(pod)
        current = _scheduled_condition(pod)
        if uid in self._reported:
            if self._reported[uid] == message:
                return
        elif (
            current is not None
            and current.get("status") == "False"
            and current.get("reason") == UNSCHEDULABLE
            and current.get("message") == message
        ):
            return
        since = current.get("lastTransitionTime") if current is not None else None
        condition = {
            "type": POD_SCHEDULED,
            "status": "False",
            "reason": UNSCHEDULABLE,
            "message": message,
            "lastProbeTime": None,
            # As Kubernetes does: the transition time moves only when the status does.
            "lastTransitionTime": since
            if current is not None and current.get("status") == "False" and since
            else rfc3339(),
        }
        try:
            await self.client.patch(
                PODS,
                name,
                {"status": {"conditions": [condition]}},
                namespace=namespace,
                patch_type="strategic",
                subresource="status",
                field_manager=self.name,
            )
        except asyncio.CancelledError:
            raise
        except errors.NotFound:
            return
        except Exception as exc:  # noqa: BLE001 - the next attempt writes it again
            self.log.warning(
                "could not update pod status", namespace=namespace, pod=name, error=repr(exc)
            )
            return
        self._reported[uid] = message
        self.log.info("pod is unschedulable", namespace=namespace, pod=name, reason=message)
        if self.events is not None:
            self.events.event(pod, "Warning", "FailedScheduling", message)

    # -- informer handlers -------------------------------------------------------------------

    def _on_node(self, etype: str, node: dict[str, Any], old: dict[str, Any] | None) -> None:
        if etype == "DELETED":
            self.cache.remove_node(str((node.get("metadata") or {}).get("name") or ""))
            # A domain gone can lower a spread constraint's skew.
            self._activate_waiting()
            return
        if self.cache.set_node(node):
            self.queue.move_all()

    def _activate_waiting(self) -> None:
        """Try again the pods that other pods' placement kept out (affinity, spread)."""
        for waiting in self._waiting_for_pods:
            if waiting in self.queue:
                self.queue.activate(waiting)
        self._waiting_for_pods.clear()

    def _on_pod(self, etype: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        key = _key(pod)
        uid = _uid(pod)
        if etype == "DELETED":
            self._reported.pop(uid, None)
            self.queue.remove(key)
            self._waiting_for_pods.discard(key)
            if self.cache.remove_pod(uid):
                self.queue.move_all()
            return
        if (pod.get("spec") or {}).get("nodeName"):
            self._reported.pop(uid, None)
            self.queue.remove(key)
            self._waiting_for_pods.discard(key)
            known = self.cache.pod(uid)
            # New here, our own placement confirmed, or relabelled: pods waiting on
            # others may fit now.
            arrived = (
                known is None
                or known.assumed
                or known.terms.labels != ((pod.get("metadata") or {}).get("labels") or {})
            )
            if self.cache.set_pod(pod):
                self.queue.move_all()
            elif arrived:
                self._activate_waiting()
            return
        if self.cache.is_assumed(uid):
            return  # our binding is on its way
        if not self.responsible_for(pod):
            self.queue.remove(key)
            return
        if key not in self.queue:
            self.queue.add(key, priority=_priority(pod), created=_created(pod))
        elif _spec_changed(old, pod):
            self.queue.activate(key)
