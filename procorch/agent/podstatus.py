"""A pod's status from its containers' records: phase, conditions, QoS class. Pure functions.

The rules are kubelet's (``getPhase`` and ``generateAPIPodStatus``): a pod is Pending while an
init container has not succeeded or an app container has never run; Running while any container
runs or will be restarted; Succeeded when every app container exited 0 and none will restart;
Failed when they all stopped, one failed, and the restart policy lets none restart. Conditions
keep their ``lastTransitionTime`` unless their status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from procorch.agent.containers import ContainerRecord, State, container_status
from procorch.api.meta import rfc3339
from procorch.api.quantity import parse_quantity

OUR_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def qos_class(spec: Mapping[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, as Kubernetes classifies a pod."""
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        resources = c.get("resources") or {}
        requests = {
            k: v for k, v in (resources.get("requests") or {}).items() if k in ("cpu", "memory")
        }
        limits = {
            k: v for k, v in (resources.get("limits") or {}).items() if k in ("cpu", "memory")
        }
        if requests or limits:
            any_set = True
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
            continue
        for name, limit in limits.items():
            request = requests.get(name, limit)
            if parse_quantity(str(request)) != parse_quantity(str(limit)):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def phase(
    spec: Mapping[str, Any],
    init: Sequence[ContainerRecord],
    app: Sequence[ContainerRecord],
) -> str:
    policy = spec.get("restartPolicy") or "Always"
    for record in init:
        if record.sidecar:
            continue
        if record.succeeded:
            continue
        if record.state is State.TERMINATED and policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for record in app:
        if record.state is State.RUNNING:
            running += 1
        elif record.state is State.TERMINATED:
            stopped += 1
            if record.succeeded:
                succeeded += 1
        elif record.last is not None:
            stopped += 1  # waiting to restart after a run
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    previous: Mapping[str, Mapping[str, Any]],
    ctype: str,
    ok: bool,
    *,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(ctype)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    cond: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since or rfc3339(),
    }
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def build(
    pod: Mapping[str, Any],
    *,
    init: Sequence[ContainerRecord],
    app: Sequence[ContainerRecord],
    ephemeral: Sequence[ContainerRecord] = (),
    pod_ip: str,
    host_ip: str,
    start_time: str,
    sandbox_ready: bool,
    terminating: bool = False,
    pod_phase: str | None = None,
) -> dict[str, Any]:
    """The full ``status`` of ``pod``. Conditions of other writers (PodScheduled, readiness
    gates' conditions) are kept as they are."""
    spec = pod.get("spec") or {}
    current = pod.get("status") or {}
    previous = {str(c.get("type")): c for c in current.get("conditions") or []}
    by_name = {c.get("name"): c for c in spec.get("containers") or []}
    init_by_name = {c.get("name"): c for c in spec.get("initContainers") or []}

    pending_init = [r.name for r in init if not r.sidecar and not r.succeeded]
    initialized = not pending_init
    unready = [r.name for r in app if not (r.ready and r.running)]
    unready += [r.name for r in init if r.sidecar and not (r.ready and r.running)]
    containers_ready = initialized and not unready and not terminating
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    gates_ok = all(previous.get(str(g), {}).get("status") == "True" for g in gates)
    the_phase = pod_phase or phase(spec, init, app)
    if the_phase in ("Succeeded", "Failed"):
        containers_ready = False

    conditions: list[dict[str, Any]] = [
        c for c in current.get("conditions") or [] if c.get("type") not in OUR_CONDITIONS
    ]
    conditions.append(_condition(previous, "PodReadyToStartContainers", sandbox_ready))
    conditions.append(
        _condition(
            previous,
            "Initialized",
            initialized,
            reason="ContainersNotInitialized",
            message=f"containers with incomplete status: [{' '.join(pending_init)}]",
        )
    )
    not_ready_message = f"containers with unready status: [{' '.join(unready)}]"
    if the_phase in ("Succeeded", "Failed"):
        reason = "PodCompleted"
        not_ready_message = ""
    else:
        reason = "ContainersNotReady"
    conditions.append(
        _condition(
            previous, "ContainersReady", containers_ready, reason=reason, message=not_ready_message
        )
    )
    ready = containers_ready and gates_ok
    ready_reason = reason
    ready_message = not_ready_message
    if containers_ready and not gates_ok:
        ready_reason = "ReadinessGatesNotReady"
        missing = [str(g) for g in gates if previous.get(str(g), {}).get("status") != "True"]
        ready_message = (
            f'corresponding condition of pod readiness gate "{missing[0]}" does not exist.'
        )
    conditions.append(
        _condition(previous, "Ready", ready, reason=ready_reason, message=ready_message)
    )
    order = {
        t: i
        for i, t in enumerate(
            ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        )
    }
    conditions.sort(key=lambda c: order.get(str(c.get("type")), 99))

    status: dict[str, Any] = {
        "phase": the_phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "qosClass": qos_class(spec),
        "containerStatuses": [container_status(r, by_name.get(r.name) or {}) for r in app],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if init:
        status["initContainerStatuses"] = [
            container_status(r, init_by_name.get(r.name) or {}) for r in init
        ]
    if ephemeral:
        debug_by_name = {c.get("name"): c for c in spec.get("ephemeralContainers") or []}
        status["ephemeralContainerStatuses"] = [
            container_status(r, debug_by_name.get(r.name) or {}) for r in ephemeral
        ]
    for key in ("nominatedNodeName", "reason", "message"):
        if key in current and key not in status:
            status[key] = current[key]
    return status


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two statuses differ only in condition times (to skip useless writes)."""

    def strip(s: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(s)
        out["conditions"] = sorted(
            (
                {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
                for c in s.get("conditions") or []
            ),
            key=lambda c: str(c.get("type")),
        )
        return out

    return strip(a) == strip(b)
