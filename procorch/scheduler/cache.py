"""The scheduler's view of the cluster: each node with the pods bound to it and the sums of
their requests, kept up to date incrementally from the informers' events.

As in kube-scheduler, a pod is counted on its node from the moment the scheduler decides
(it is *assumed*), before the binding is written and long before the watch brings it back:
otherwise a burst of pods would all be placed on the node that looked emptiest. When the
informer shows the pod bound, the assumption is *confirmed* (replaced by what the API
says); when the binding fails, it is *forgotten*. Pods that finished (Succeeded, Failed) or
are gone no longer count.

Pods are keyed by uid, so a pod deleted and re-created under the same name is two pods.
Nodes are keyed by name; pods bound to a node the cache has no Node object for still count
there, so a node that re-registers finds its pods.

Pure data: no I/O. Concurrency: single event loop; mutated only by the informer handlers
and the scheduling loop, never across an ``await``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from procorch.scheduler import resources
from procorch.scheduler.interpod import PodTerms, compile_pod
from procorch.scheduler.resources import Amounts

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def controller_uid(pod: Mapping[str, Any]) -> str:
    """The uid of the pod's controlling owner (its ReplicaSet, Job...), or ''."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return str(ref.get("uid") or "")
    return ""


@dataclass(slots=True)
class PodEntry:
    """What the scheduler needs to know about a pod bound (or assumed bound) to a node."""

    uid: str
    namespace: str
    name: str
    node: str
    requests: Amounts
    nonzero_cpu: int
    nonzero_memory: int
    owner: str
    terms: PodTerms = field(default_factory=lambda: PodTerms("", {}))
    """Its labels and affinity terms, for placing other pods relative to it."""
    terminating: bool = False
    assumed: bool = False

    @classmethod
    def of(cls, pod: Mapping[str, Any], node: str, *, assumed: bool = False) -> PodEntry:
        meta = pod.get("metadata") or {}
        cpu, memory = resources.pod_nonzero_requests(pod)
        return cls(
            uid=str(meta.get("uid") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            node=node,
            requests=resources.pod_requests(pod),
            nonzero_cpu=cpu,
            nonzero_memory=memory,
            owner=controller_uid(pod),
            terms=compile_pod(pod),
            terminating=bool(meta.get("deletionTimestamp")),
            assumed=assumed,
        )


def ready_status(node: Mapping[str, Any]) -> str:
    """The status of the node's Ready condition: "True", "False" or "Unknown" (missing)."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


@dataclass(eq=False)
class NodeInfo:
    """One node and the pods counted on it."""

    name: str
    node: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    unschedulable: bool = False
    ready: str = "Unknown"
    allocatable: Amounts = field(default_factory=dict)
    pods: dict[str, PodEntry] = field(default_factory=dict)
    requested: Amounts = field(default_factory=dict)
    nonzero_cpu: int = 0
    nonzero_memory: int = 0
    owners: Counter[str] = field(default_factory=Counter)

    @property
    def allowed_pods(self) -> int:
        return self.allocatable.get(resources.PODS, 0)

    def facts(self) -> tuple[Any, ...]:
        """Everything about the Node object that a scheduling decision depends on."""
        return (
            self.labels,
            self.taints,
            self.unschedulable,
            self.ready,
            self.allocatable,
        )

    def set_node(self, node: dict[str, Any]) -> bool:
        """Take ``node`` as this node's object; True when that can change a decision."""
        before = self.facts() if self.node is not None else None
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        self.node = node
        self.labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        self.taints = [t for t in spec.get("taints") or [] if isinstance(t, dict)]
        self.unschedulable = spec.get("unschedulable") is True
        self.ready = ready_status(node)
        self.allocatable = resources.node_allocatable(node)
        return before != self.facts()

    def add_pod(self, entry: PodEntry) -> None:
        self.pods[entry.uid] = entry
        resources.add_into(self.requested, entry.requests)
        self.nonzero_cpu += entry.nonzero_cpu
        self.nonzero_memory += entry.nonzero_memory
        if entry.owner:
            self.owners[entry.owner] += 1

    def remove_pod(self, entry: PodEntry) -> None:
        if self.pods.pop(entry.uid, None) is None:
            return
        for name, value in entry.requests.items():
            left = self.requested.get(name, 0) - value
            if left:
                self.requested[name] = left
            else:
                self.requested.pop(name, None)
        self.nonzero_cpu -= entry.nonzero_cpu
        self.nonzero_memory -= entry.nonzero_memory
        if entry.owner:
            self.owners[entry.owner] -= 1
            if self.owners[entry.owner] <= 0:
                del self.owners[entry.owner]


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, PodEntry] = {}
        # Placed pods with required anti-affinity terms (every new pod is checked against
        # them) and with preferred or required affinity terms (they score new pods).
        self.anti_affinity_holders: dict[str, PodEntry] = {}
        self.preference_holders: dict[str, PodEntry] = {}

    # -- nodes --------------------------------------------------------------------------------

    def set_node(self, node: dict[str, Any]) -> bool:
        """Add or update a Node; True when the change can make some pod fit."""
        name = str((node.get("metadata") or {}).get("name") or "")
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name)
        return info.set_node(node)

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None  # keep counting its pods until they are gone
        else:
            del self._nodes[name]

    def nodes(self) -> list[NodeInfo]:
        """The nodes a pod may be placed on (those with a Node object), by name."""
        return [info for _, info in sorted(self._nodes.items()) if info.node is not None]

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    # -- pods ---------------------------------------------------------------------------------

    def pod(self, uid: str) -> PodEntry | None:
        return self._pods.get(uid)

    def placed(self) -> Collection[PodEntry]:
        """Every pod counted on a node (a live view: do not hold it across changes)."""
        return self._pods.values()

    def is_assumed(self, uid: str) -> bool:
        entry = self._pods.get(uid)
        return entry is not None and entry.assumed

    def set_pod(self, pod: Mapping[str, Any]) -> bool:
        """Count a pod the API shows bound to a node (confirming an assumption), or stop
        counting it once it has finished; True when that freed resources somewhere."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        phase = (pod.get("status") or {}).get("phase")
        if not uid or not node:
            return False
        if phase in TERMINAL_PHASES:
            return self.remove_pod(uid)
        old = self._pods.get(uid)
        entry = PodEntry.of(pod, node)
        self._place(entry)
        if old is None:
            return False
        if old.node != node:
            return True  # bound elsewhere than assumed: the assumed node has room again
        return any(entry.requests.get(k, 0) < v for k, v in old.requests.items())

    def remove_pod(self, uid: str) -> bool:
        """Stop counting a pod; True when it was counted somewhere."""
        entry = self._pods.pop(uid, None)
        if entry is None:
            return False
        self.anti_affinity_holders.pop(uid, None)
        self.preference_holders.pop(uid, None)
        info = self._nodes.get(entry.node)
        if info is not None:
            info.remove_pod(entry)
            if info.node is None and not info.pods:
                del self._nodes[entry.node]
        return True

    def assume(self, pod: Mapping[str, Any], node: str) -> PodEntry:
        """Count ``pod`` on ``node`` now, ahead of the binding the scheduler is writing."""
        entry = PodEntry.of(pod, node, assumed=True)
        self._place(entry)
        return entry

    def forget(self, uid: str) -> bool:
        """Undo :meth:`assume` after a failed binding; no-op once the binding was confirmed."""
        if not self.is_assumed(uid):
            return False
        return self.remove_pod(uid)

    def _place(self, entry: PodEntry) -> None:
        self.remove_pod(entry.uid)
        self._pods[entry.uid] = entry
        terms = entry.terms
        if terms.anti_affinity:
            self.anti_affinity_holders[entry.uid] = entry
        if terms.preferred_affinity or terms.preferred_anti_affinity or terms.affinity:
            self.preference_holders[entry.uid] = entry
        info = self._nodes.get(entry.node)
        if info is None:
            info = self._nodes[entry.node] = NodeInfo(entry.node)
        info.add_pod(entry)
