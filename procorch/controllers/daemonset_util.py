"""The rules of the DaemonSet controller, as pure functions of the objects and a clock value.

Kubernetes' ``daemon/util`` and the pure parts of ``daemon_controller.go`` and ``update.go``:

* which nodes should run a daemon pod (:func:`should_run`): the template's nodeSelector and
  required node affinity, and every NoSchedule/NoExecute taint tolerated, with the
  tolerations every daemon pod gets (:data:`DAEMON_TOLERATIONS`); a node whose pod only
  tolerates its NoExecute taints keeps a pod it already runs;
* the pod for one node (:func:`pod_for_node`): the template with those tolerations, the
  ``controller-revision-hash`` label and a required node affinity on ``metadata.name``, so
  the default scheduler binds it to that node and checks its resources;
* the ControllerRevision data of a template (:func:`history_data`), which ``kubectl rollout
  undo`` applies as a strategic merge patch;
* what to create and delete (:func:`manage_plan`, :func:`rolling_update_plan`) and the status
  (:func:`calculate_status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from procorch.api.conditions import condition, is_ready
from procorch.api.meta import deep_copy, parse_time
from procorch.api.nodeaffinity import pod_matches_node
from procorch.api.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    tolerated,
    with_condition_taint,
)
from procorch.api.types.apps import TEMPLATE_GENERATION_ANNOTATION
from procorch.controllers.deployment_util import int_or_percent, template_hash
from procorch.controllers.workloads_pods import is_available, pod_from_template

Obj = dict[str, Any]

HASH_LABEL = "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": NOT_READY, "operator": "Exists", "effect": NO_EXECUTE},
    {"key": UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": UNSCHEDULABLE, "operator": "Exists", "effect": NO_SCHEDULE},
)
"""What ``AddOrUpdateDaemonPodTolerations`` gives every daemon pod: it stays on a node that
becomes unreachable, and runs on cordoned and pressured nodes. Host-network pods also
tolerate :data:`NETWORK_UNAVAILABLE`."""


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def template_of(ds: Obj) -> Obj:
    template = _spec(ds).get("template")
    return template if isinstance(template, dict) else {}


def template_generation(ds: Obj) -> str | None:
    value = ((ds.get("metadata") or {}).get("annotations") or {}).get(
        TEMPLATE_GENERATION_ANNOTATION
    )
    return str(value) if value is not None else None


def with_daemon_tolerations(template: Obj) -> Obj:
    """A copy of the pod template with the daemon tolerations added (each only when an
    identical one is not there)."""
    template = deep_copy(template)
    spec = template.setdefault("spec", {})
    tolerations = [dict(t) for t in spec.get("tolerations") or [] if isinstance(t, dict)]
    wanted = list(DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append({"key": NETWORK_UNAVAILABLE, "operator": "Exists", "effect": NO_SCHEDULE})
    for toleration in wanted:
        if not any(
            t.get("key") == toleration["key"]
            and (t.get("operator") or "Equal") == toleration["operator"]
            and t.get("effect") == toleration["effect"]
            for t in tolerations
        ):
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return template


def node_ready_status(node: Obj) -> str:
    cond = condition(node, "Ready")
    return str(cond.get("status") or "Unknown") if cond is not None else "Unknown"


@dataclass(frozen=True)
class Placement:
    """Whether a node should run the daemon pod, and whether a pod there may stay."""

    run: bool
    keep: bool


def should_run(node: Obj, ds: Obj, template: Obj | None = None) -> Placement:
    """``NodeShouldRunDaemonPod``. ``template`` is :func:`with_daemon_tolerations` of the
    DaemonSet's template, when the caller has it already."""
    template = template if template is not None else with_daemon_tolerations(template_of(ds))
    pod_spec = _spec(template)
    meta = node.get("metadata") or {}
    name = str(meta.get("name") or "")
    wanted_node = pod_spec.get("nodeName")
    if wanted_node and wanted_node != name:
        return Placement(False, False)
    if not pod_matches_node({"spec": pod_spec}, name, meta.get("labels") or {}):
        return Placement(False, False)
    tolerations = [t for t in pod_spec.get("tolerations") or [] if isinstance(t, Mapping)]
    taints = with_condition_taint(
        [t for t in _spec(node).get("taints") or [] if isinstance(t, Mapping)],
        node_ready_status(node),
    )
    untolerated = [
        t
        for t in taints
        if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE) and not tolerated(tolerations, t)
    ]
    if not untolerated:
        return Placement(True, True)
    return Placement(False, not any(t.get("effect") == NO_EXECUTE for t in untolerated))


def pod_for_node(ds: Obj, template: Obj, revision_hash: str, node_name: str) -> Obj:
    """The pod a DaemonSet creates for one node: ``template`` (already carrying the daemon
    tolerations) labelled with the revision hash, its required node affinity replaced by
    ``metadata.name In [node]`` (``ReplaceDaemonSetPodNodeNameNodeAffinity``)."""
    pod = pod_from_template(template, ds)
    labels = pod["metadata"].setdefault("labels", {})
    labels[HASH_LABEL] = revision_hash
    generation = template_generation(ds)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = generation
    affinity = pod["spec"].get("affinity")
    affinity = dict(affinity) if isinstance(affinity, dict) else {}
    node_affinity = affinity.get("nodeAffinity")
    node_affinity = dict(node_affinity) if isinstance(node_affinity, dict) else {}
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }
    affinity["nodeAffinity"] = node_affinity
    pod["spec"]["affinity"] = affinity
    return pod


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: where it is bound, or the node its affinity names
    (``GetTargetNodeName``)."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in (term or {}).get("matchFields") or []:
            values = req.get("values") or []
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and values:
                return str(values[0])
    return None


def history_data(ds: Obj) -> Obj:
    """A ControllerRevision's ``data``: a strategic merge patch that replaces the template
    (``getPatch``), which ``kubectl rollout undo`` sends back as it is."""
    template = deep_copy(template_of(ds))
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(revision: Obj) -> str:
    return str(((revision.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL) or "")


def pod_hash(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL) or "")


def is_updated(pod: Obj, current_hash: str, generation: str | None) -> bool:
    """``IsPodUpdated``: the pod carries the current revision's hash (or, from older
    controllers, the current template generation)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation:
        return True
    return labels.get(HASH_LABEL) == current_hash


def _created(pod: Obj) -> tuple[float, str]:
    when = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return (when.timestamp() if when else 0.0, str((pod.get("metadata") or {}).get("name")))


def oldest_first(pods: Iterable[Obj]) -> list[Obj]:
    """``podByCreationTimestampAndPhase``: pods bound to a node first, then the oldest, then
    by name."""
    return sorted(pods, key=lambda p: (not _spec(p).get("nodeName"), *_created(p)))


def allows_surge(ds: Obj) -> bool:
    strategy = _spec(ds).get("updateStrategy") or {}
    if strategy.get("type") != "RollingUpdate":
        return False
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge")
    try:
        return int_or_percent(surge, 100, round_up=True) != 0
    except ValueError:
        return False


def is_rolling(ds: Obj) -> bool:
    return (_spec(ds).get("updateStrategy") or {}).get("type") == "RollingUpdate"


def min_ready_seconds(ds: Obj) -> int:
    value = _spec(ds).get("minReadySeconds")
    return value if isinstance(value, int) and value > 0 else 0


# -- one reconcile's view --------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One reconcile's view of a DaemonSet: the nodes, its pods by target node, its current
    revision's hash, and where it should run (the plans and the status read this)."""

    ds: Obj
    nodes: list[Obj]
    by_node: Mapping[str, list[Obj]]
    current_hash: str
    placements: Mapping[str, Placement]
    template: Obj
    """The pod template with the daemon tolerations: what new pods are made from."""

    @classmethod
    def of(cls, ds: Obj, nodes: list[Obj], pods: Iterable[Obj], current_hash: str) -> Snapshot:
        template = with_daemon_tolerations(template_of(ds))
        placements = {str(n["metadata"]["name"]): should_run(n, ds, template) for n in nodes}
        return cls(ds, nodes, group_by_node(pods), current_hash, placements, template)

    def pod_for(self, node_name: str) -> Obj:
        return pod_for_node(self.ds, self.template, self.current_hash, node_name)


# -- manage: one pod on each node that should run one --------------------------------------


@dataclass
class ManagePlan:
    nodes_to_create: list[str] = field(default_factory=list)
    pods_to_delete: list[Obj] = field(default_factory=list)
    failed: list[tuple[str, Obj]] = field(default_factory=list)
    """Failed pods by node: deleted (and replaced) unless that node is in back-off."""


def group_by_node(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    """The DaemonSet's pods by target node; terminal pods being deleted are left out (the
    agent or pod GC finishes them; ``getNodesToDaemonPods``)."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if terminal and (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        node = target_node(pod)
        if node is not None:
            out.setdefault(node, []).append(pod)
    return out


def manage_plan(view: Snapshot, at: datetime) -> ManagePlan:
    """``podsShouldBeOnNode`` over every node, then ``getUnscheduledPodsWithoutNode``:

    * a node that should run a pod and has none gets one (with surge, also one whose pods
      are all being deleted);
    * on a node whose pod may stay: failed pods are reported (deleted and replaced under
      back-off), succeeded ones deleted, surplus deleted (all but the oldest; with surge,
      one old pod may stay beside the oldest new one until that is available);
    * a node whose pods may not stay loses them all;
    * a pod still waiting for a node that no longer exists is deleted.
    """
    ds, by_node, current_hash = view.ds, view.by_node, view.current_hash
    min_ready = min_ready_seconds(ds)
    plan = ManagePlan()
    surge = allows_surge(ds)
    for node in view.nodes:
        name = str(node["metadata"]["name"])
        placement = view.placements[name]
        pods = by_node.get(name) or []
        if placement.run and not pods:
            plan.nodes_to_create.append(name)
        elif placement.keep:
            running: list[Obj] = []
            for pod in pods:
                if (pod.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Failed":
                    plan.failed.append((name, pod))
                elif phase == "Succeeded":
                    plan.pods_to_delete.append(pod)
                else:
                    running.append(pod)
            if surge and not running and placement.run:
                # Surging: a node keeps at least one pod that is not being deleted.
                plan.nodes_to_create.append(name)
            if len(running) <= 1:
                continue
            ordered = oldest_first(running)
            if not surge:
                plan.pods_to_delete += ordered[1:]
                continue
            oldest_new: Obj | None = None
            oldest_old: Obj | None = None
            for pod in ordered:
                if pod_hash(pod) == current_hash:
                    if oldest_new is None:
                        oldest_new = pod
                        continue
                elif oldest_old is None:
                    oldest_old = pod
                    continue
                plan.pods_to_delete.append(pod)
            if oldest_new is not None and oldest_old is not None:
                if not is_ready(oldest_old) or is_available(oldest_new, min_ready, at):
                    plan.pods_to_delete.append(oldest_old)
        else:
            plan.pods_to_delete += [
                p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")
            ]
    known = {str(n["metadata"]["name"]) for n in view.nodes}
    for name, pods in by_node.items():
        if name not in known:
            plan.pods_to_delete += [p for p in pods if not (p.get("spec") or {}).get("nodeName")]
    return plan


# -- rolling update ------------------------------------------------------------------------


def _updated_on_node(
    pods: list[Obj], current_hash: str, generation: str | None
) -> tuple[Obj | None, Obj | None, bool]:
    """``findUpdatedPodsOnNode``: the node's one new and one old pod; False when it has more
    than one of either (the manage loop settles that first)."""
    new: Obj | None = None
    old: Obj | None = None
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if is_updated(pod, current_hash, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """maxSurge and maxUnavailable against ``desired`` nodes, percentages rounded up; one
    unavailable when both come to 0 (``updatedDesiredNodeCounts``)."""
    rolling = ((_spec(ds).get("updateStrategy") or {}).get("rollingUpdate")) or {}
    try:
        surge = int_or_percent(rolling.get("maxSurge"), desired, round_up=True)
        unavailable = int_or_percent(rolling.get("maxUnavailable"), desired, round_up=True)
    except ValueError:
        surge, unavailable = 0, 1
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass
class RolloutPlan:
    pods_to_delete: list[Obj] = field(default_factory=list)
    nodes_to_create: list[str] = field(default_factory=list)


def rolling_update_plan(view: Snapshot, at: datetime) -> RolloutPlan:
    """Kubernetes' ``rollingUpdate``. Without surge: delete old pods while fewer than
    maxUnavailable nodes are unavailable (old pods that are unavailable anyway go first),
    and let the manage loop create their replacements. With surge: start a new pod beside
    an old one on up to maxSurge nodes at once, and delete the old pod once the new one is
    available."""
    ds, current_hash, placements = view.ds, view.current_hash, view.placements
    generation = template_generation(ds)
    min_ready = min_ready_seconds(ds)
    candidates = {name: list(pods) for name, pods in view.by_node.items()}
    desired = 0
    for node in view.nodes:
        name = str(node["metadata"]["name"])
        if placements[name].run:
            desired += 1
            candidates.setdefault(name, [])
    max_surge, max_unavailable = surge_and_unavailable(ds, desired)
    plan = RolloutPlan()
    if max_surge == 0:
        unavailable = 0
        replacements: list[Obj] = []
        deletable: list[Obj] = []
        for name in sorted(candidates):
            new, old, ok = _updated_on_node(candidates[name], current_hash, generation)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # the manage loop creates or deletes here first
            elif new is not None:
                if not is_available(new, min_ready, at):
                    unavailable += 1
            elif old is not None:
                if not is_available(old, min_ready, at):
                    replacements.append(old)  # replaced whatever the budget says
                    unavailable += 1
                elif unavailable < max_unavailable:
                    deletable.append(old)
        room = max(0, min(max_unavailable - unavailable, len(deletable)))
        plan.pods_to_delete = replacements + deletable[:room]
        return plan
    surging = 0
    allowed: list[str] = []
    wanting: list[str] = []
    for name in sorted(candidates):
        new, old, ok = _updated_on_node(candidates[name], current_hash, generation)
        if not ok:
            surging += 1  # the manage loop settles this node first
            continue
        placement = placements.get(name)
        if placement is None or not placement.keep:
            continue  # the manage loop removes these
        if old is None:
            continue
        if new is None:
            if not placement.run:
                # No new pod could be scheduled here (a taint, a NotReady node): an old
                # pod that is not available anyway goes; an available one stays.
                if not is_available(old, min_ready, at):
                    plan.pods_to_delete.append(old)
            elif not is_available(old, min_ready, at):
                allowed.append(name)
            elif surging < max_surge:
                wanting.append(name)
        elif not is_available(new, min_ready, at):
            surging += 1
        else:
            plan.pods_to_delete.append(old)
    room = max(0, min(max_surge - surging, len(wanting)))
    plan.nodes_to_create = allowed + wanting[:room]
    return plan


# -- status ----------------------------------------------------------------------------------


def calculate_status(view: Snapshot, at: datetime, *, observed: bool) -> Obj:
    """``updateDaemonSetStatus``: counts over the nodes that should run a pod, from the
    oldest pod on each."""
    ds = view.ds
    generation = template_generation(ds)
    min_ready = min_ready_seconds(ds)
    desired = current = ready = available = updated = misscheduled = 0
    for node in view.nodes:
        name = str(node["metadata"]["name"])
        pods = view.by_node.get(name) or []
        if not view.placements[name].run:
            if pods:
                misscheduled += 1
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = oldest_first(pods)[0]
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready, at):
                available += 1
        if is_updated(pod, view.current_hash, generation):
            updated += 1
    old = ds.get("status") or {}
    observed_generation = (
        int((ds.get("metadata") or {}).get("generation") or 0)
        if observed
        else old.get("observedGeneration")
    )
    status: Obj = {
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
    }
    optional = {
        "observedGeneration": observed_generation,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
        "collisionCount": old.get("collisionCount"),
    }
    # Zero counts are left out, as Kubernetes' JSON leaves them out (omitempty).
    status.update({k: v for k, v in optional.items() if v})
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


def template_hash_of(ds: Obj, collision_count: int | None) -> str:
    """The ``controller-revision-hash`` of the DaemonSet's template (``ComputeHash``)."""
    return template_hash(template_of(ds), collision_count)
