"""The Pod printer: READY, STATUS and RESTARTS exactly as ``kubectl get pods`` shows them.

STATUS is the part users read most and the one with the most rules: a failing or waiting init
container shows as ``Init:<reason>`` or ``Init:N/M``; otherwise the last container in the
list with a waiting or terminated reason wins (``CrashLoopBackOff``, ``Completed``,
``Error``, ``ExitCode:3``); a pod being deleted shows ``Terminating``. RESTARTS adds how long
ago the latest restart was (``3 (25s ago)``). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from procorch.api.printers._base import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    Printer,
    between,
    created_age,
    dig,
    i,
    lst,
    m,
    name_of,
    parse_time,
    s,
    wide,
)

COLUMNS = (
    NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column(
        "Restarts",
        description="How many times the containers in this pod restarted, and how long ago the "
        "latest restart was.",
    ),
    AGE,
    wide("IP", "The pod's IP address."),
    wide("Node", "The node the pod is bound to."),
    wide("Nominated Node", "The node the scheduler nominated while preempting for this pod."),
    wide("Readiness Gates", "How many of the pod's readiness gates are satisfied."),
)

# The reason a node controller gives pods on a node that stopped answering.
_NODE_LOST = "NodeLost"


def _restartable(container: Any) -> bool:
    # A sidecar: an init container that keeps running alongside the main containers.
    return s(m(container).get("restartPolicy")) == "Always"


def _condition_true(status: Obj, kind: str) -> bool:
    for cond in lst(status.get("conditions")):
        if s(m(cond).get("type")) == kind:
            return s(m(cond).get("status")) == "True"
    return False


def _has_ready_condition(status: Obj) -> bool:
    return any(
        s(m(c).get("type")) == "Ready" and s(m(c).get("status")) == "True"
        for c in lst(status.get("conditions"))
    )


def _finished_at(container_status: Obj) -> datetime | None:
    return parse_time(dig(container_status, "lastState", "terminated", "finishedAt"))


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


def _state(state: Obj, which: str) -> Obj | None:
    # Present-but-empty ({}) still means "in this state", as a non-nil Go pointer does.
    value = state.get(which)
    return value if isinstance(value, Mapping) else None


def _exit_reason(terminated: Obj, prefix: str) -> str:
    signal = i(terminated.get("signal"))
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{i(terminated.get('exitCode'))}"


def pod_cells(pod: Obj, now: datetime) -> list[Cell]:
    spec, status, meta = m(pod.get("spec")), m(pod.get("status")), m(pod.get("metadata"))
    init_specs = [m(c) for c in lst(spec.get("initContainers"))]
    init_by_name = {s(c.get("name")): c for c in init_specs}
    total = len(lst(spec.get("containers"))) + sum(1 for c in init_specs if _restartable(c))

    phase = s(status.get("phase"))
    reason = s(status.get("reason")) or phase
    for cond in lst(status.get("conditions")):
        cond = m(cond)
        if s(cond.get("type")) == "PodScheduled" and s(cond.get("reason")) == "SchedulingGated":
            reason = "SchedulingGated"

    ready = 0
    restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    initializing = False
    for index, cs in enumerate(lst(status.get("initContainerStatuses"))):
        cs = m(cs)
        count = i(cs.get("restartCount"))
        restarts += count
        last_restart = _later(last_restart, _finished_at(cs))
        sidecar = _restartable(init_by_name.get(s(cs.get("name"))))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, _finished_at(cs))
        state = m(cs.get("state"))
        terminated, waiting = _state(state, "terminated"), _state(state, "waiting")
        if terminated is not None and i(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if terminated is not None:
            term_reason = s(terminated.get("reason"))
            reason = f"Init:{term_reason}" if term_reason else _exit_reason(terminated, "Init:")
        elif waiting is not None and s(waiting.get("reason")) not in ("", "PodInitializing"):
            reason = "Init:" + s(waiting.get("reason"))
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        # Only sidecars' restarts count once the pod is past initialization.
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(lst(status.get("containerStatuses"))):
            cs = m(cs)
            restarts += i(cs.get("restartCount"))
            last_restart = _later(last_restart, _finished_at(cs))
            state = m(cs.get("state"))
            terminated, waiting = _state(state, "terminated"), _state(state, "waiting")
            if waiting is not None and s(waiting.get("reason")):
                reason = s(waiting.get("reason"))
            elif terminated is not None and s(terminated.get("reason")):
                reason = s(terminated.get("reason"))
            elif terminated is not None:
                reason = _exit_reason(terminated, "")
            elif cs.get("ready") is True and _state(state, "running") is not None:
                has_running = True
                ready += 1
        # One container finished while another still runs: the pod is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _has_ready_condition(status) else "NotReady"

    if meta.get("deletionTimestamp") and s(status.get("reason")) == _NODE_LOST:
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({between(last_restart, now)} ago)"

    return [
        name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        created_age(pod, now),
        *_wide_cells(spec, status),
    ]


def _wide_cells(spec: Obj, status: Obj) -> list[Cell]:
    ips = lst(status.get("podIPs"))
    ip = s(m(ips[0]).get("ip")) if ips else s(status.get("podIP"))
    gates = lst(spec.get("readinessGates"))
    gates_cell = "<none>"
    if gates:
        satisfied = 0
        for gate in gates:
            wanted = s(m(gate).get("conditionType"))
            for cond in lst(status.get("conditions")):
                if s(m(cond).get("type")) == wanted:
                    satisfied += s(m(cond).get("status")) == "True"
                    break
        gates_cell = f"{satisfied}/{len(gates)}"
    return [
        ip or "<none>",
        s(spec.get("nodeName")) or "<none>",
        s(status.get("nominatedNodeName")) or "<none>",
        gates_cell,
    ]


def pod_conditions(pod: Obj) -> list[dict[str, str]]:
    """Row conditions marking a finished pod, as Kubernetes attaches them."""
    phase = s(dig(pod, "status", "phase"))
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


POD = Printer(COLUMNS, pod_cells, pod_conditions)
