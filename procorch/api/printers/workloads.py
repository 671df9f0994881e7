"""Printers for workload kinds: Deployment, ReplicaSet, DaemonSet and ControllerRevision
(apps), Job and CronJob (batch),
HorizontalPodAutoscaler (autoscaling), PodDisruptionBudget (policy).

Columns and cells follow Kubernetes' server-side printers. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from procorch.api import errors
from procorch.api.printers._base import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    SELECTOR,
    Cell,
    Column,
    Obj,
    Printer,
    age,
    between,
    created_age,
    dig,
    i,
    layout_containers,
    lst,
    m,
    name_of,
    parse_time,
    s,
    template_containers,
)
from procorch.api.selectors import (
    format_label_selector,
    format_labels,
    label_selector_from_dict,
)

# ---------------------------------------------------------------------- Deployment, ReplicaSet

DEPLOYMENT_COLUMNS = (
    NAME,
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", description="Replicas running the current pod template."),
    Column("Available", description="Replicas ready for at least minReadySeconds."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
)


def deployment_cells(deploy: Obj, now: datetime) -> list[Cell]:
    spec, status = m(deploy.get("spec")), m(deploy.get("status"))
    try:
        # A Deployment prints its selector as compiled; an empty one prints as "".
        selector = str(label_selector_from_dict(_selector(spec)))
    except errors.BadRequest:
        selector = "<invalid>"
    names, images = layout_containers(template_containers(deploy, "spec"))
    return [
        name_of(deploy),
        f"{i(status.get('readyReplicas'))}/{i(spec.get('replicas'), 1)}",
        i(status.get("updatedReplicas")),
        i(status.get("availableReplicas")),
        created_age(deploy, now),
        names,
        images,
        selector,
    ]


REPLICASET_COLUMNS = (
    NAME,
    Column("Desired", type="integer", description="Number of desired pods."),
    Column("Current", type="integer", description="The most recently observed number of replicas."),
    Column("Ready", type="integer", description="Number of pods with a Ready condition."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
)


def replicaset_cells(rs: Obj, now: datetime) -> list[Cell]:
    spec, status = m(rs.get("spec")), m(rs.get("status"))
    names, images = layout_containers(template_containers(rs, "spec"))
    return [
        name_of(rs),
        i(spec.get("replicas"), 1),
        i(status.get("replicas")),
        i(status.get("readyReplicas")),
        created_age(rs, now),
        names,
        images,
        format_label_selector(_selector(spec)),
    ]


DAEMONSET_COLUMNS = (
    NAME,
    Column("Desired", type="integer", description="Nodes that should run the daemon pod."),
    Column("Current", type="integer", description="Nodes running at least one daemon pod."),
    Column("Ready", type="integer", description="Nodes whose daemon pod is ready."),
    Column("Up-to-date", type="integer", description="Nodes running the current template."),
    Column(
        "Available", type="integer", description="Nodes whose pod is ready for minReadySeconds."
    ),
    Column("Node Selector", description="The template's nodeSelector."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
)


def daemonset_cells(ds: Obj, now: datetime) -> list[Cell]:
    spec, status = m(ds.get("spec")), m(ds.get("status"))
    names, images = layout_containers(template_containers(ds, "spec"))
    node_selector = dig(ds, "spec", "template", "spec", "nodeSelector")
    return [
        name_of(ds),
        i(status.get("desiredNumberScheduled")),
        i(status.get("currentNumberScheduled")),
        i(status.get("numberReady")),
        i(status.get("updatedNumberScheduled")),
        i(status.get("numberAvailable")),
        format_labels(node_selector if isinstance(node_selector, Mapping) else None),
        created_age(ds, now),
        names,
        images,
        format_label_selector(_selector(spec)),
    ]


CONTROLLER_REVISION_COLUMNS = (
    NAME,
    Column("Controller", description="Controller of the object"),
    Column("Revision", description="Revision indicates the revision of the state represented."),
    AGE,
)


def controller_revision_cells(revision: Obj, now: datetime) -> list[Cell]:
    controller = "<none>"
    for ref in lst(dig(revision, "metadata", "ownerReferences")):
        ref = m(ref)
        if ref.get("controller") is True:
            group = s(ref.get("apiVersion")).rpartition("/")[0]
            kind = s(ref.get("kind")).lower() + (f".{group}" if group else "")
            controller = f"{kind}/{s(ref.get('name'))}"
            break
    return [name_of(revision), controller, i(revision.get("revision")), created_age(revision, now)]


def _selector(spec: Obj) -> Mapping[str, Any] | None:
    value = spec.get("selector")
    return value if isinstance(value, Mapping) else None


# ------------------------------------------------------------------------------ Job, CronJob

JOB_COLUMNS = (
    NAME,
    Column("Status", description="Status of the job."),
    Column("Completions", description="The number of pods which reached phase Succeeded."),
    Column("Duration", description="Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
)


def _condition_true(conditions: list[Any], kind: str) -> bool:
    for cond in conditions:
        if s(m(cond).get("type")) == kind:
            return s(m(cond).get("status")) == "True"
    return False


def _job_status(job: Obj) -> str:
    conditions = lst(dig(job, "status", "conditions"))
    if _condition_true(conditions, "Complete"):
        return "Complete"
    if _condition_true(conditions, "Failed"):
        return "Failed"
    if dig(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _condition_true(conditions, kind):
            return kind
    return "Running"


def job_cells(job: Obj, now: datetime) -> list[Cell]:
    spec, status = m(job.get("spec")), m(job.get("status"))
    succeeded = i(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{i(spec.get('completions'))}"
    elif i(spec.get("parallelism")) > 1:
        # A work-queue job: done after one success, however many run in parallel.
        completions = f"{succeeded}/1 of {i(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    started, completed = (
        parse_time(status.get("startTime")),
        parse_time(status.get("completionTime")),
    )
    duration = ""
    if started is not None:
        duration = between(started, completed if completed is not None else now)
    names, images = layout_containers(template_containers(job, "spec"))
    return [
        name_of(job),
        _job_status(job),
        completions,
        duration,
        created_age(job, now),
        names,
        images,
        format_label_selector(_selector(spec)),
    ]


CRONJOB_COLUMNS = (
    NAME,
    Column("Schedule", description="The schedule in Cron format."),
    Column("Timezone", description="The time zone the schedule is read in."),
    Column("Suspend", type="boolean", description="Whether new runs are suspended."),
    Column("Active", type="integer", description="How many jobs are running."),
    Column("Last Schedule", description="When a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
)


def _bool_cell(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value is True else "False"


def cronjob_cells(cj: Obj, now: datetime) -> list[Cell]:
    spec, status = m(cj.get("spec")), m(cj.get("status"))
    job_spec = m(dig(spec, "jobTemplate", "spec"))
    last = status.get("lastScheduleTime")
    names, images = layout_containers(template_containers(job_spec))
    return [
        name_of(cj),
        s(spec.get("schedule")),
        s(spec.get("timeZone")) or "<none>",
        _bool_cell(spec.get("suspend")),
        len(lst(status.get("active"))),
        age(last, now) if last else "<none>",
        created_age(cj, now),
        names,
        images,
        format_label_selector(_selector(job_spec)),
    ]


# ------------------------------------------------------------------ HorizontalPodAutoscaler

HPA_COLUMNS = (
    NAME,
    Column("Reference", description="The object whose replicas are scaled."),
    Column("Targets", description="Current and target values of each metric."),
    Column("MinPods", description="The lower limit for the number of replicas."),
    Column("MaxPods", description="The upper limit for the number of replicas."),
    Column("Replicas", description="The current number of replicas."),
    AGE,
)

_UNKNOWN = "<unknown>"


def _current(status: Obj | None, source_key: str) -> Obj | None:
    """A metric's current values, or ``None`` while its status has no entry for the source."""
    if status is None or not isinstance(status.get(source_key), Mapping):
        return None
    return m(status[source_key].get("current"))


def _value(current: Obj | None, key: str) -> str:
    if current is None or current.get(key) is None:
        return _UNKNOWN
    return s(current.get(key))


def _metric_text(spec: Obj, status: Obj | None) -> str:
    kind = s(spec.get("type"))
    if kind in ("External", "Object"):
        key = kind.lower()
        target, current = m(dig(spec, key, "target")), _current(status, key)
        if target.get("averageValue") is not None:
            return f"{_value(current, 'averageValue')}/{s(target.get('averageValue'))} (avg)"
        return f"{_value(current, 'value')}/{s(target.get('value'))}"
    if kind == "Pods":
        target, current = m(dig(spec, "pods", "target")), _current(status, "pods")
        return f"{_value(current, 'averageValue')}/{s(target.get('averageValue'))}"
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source, current = m(spec.get(key)), _current(status, key)
        target, resource = m(source.get("target")), s(source.get("name"))
        if target.get("averageValue") is not None:
            return f"{resource}: {_value(current, 'averageValue')}/{s(target.get('averageValue'))}"
        now_value = _UNKNOWN
        if current is not None and current.get("averageUtilization") is not None:
            now_value = f"{i(current.get('averageUtilization'))}%"
        wanted = "<auto>"
        if target.get("averageUtilization") is not None:
            wanted = f"{i(target.get('averageUtilization'))}%"
        return f"{resource}: {now_value}/{wanted}"
    return "<unknown type>"


def format_hpa_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """``cpu: 45%/80%, memory: 10Mi/100Mi + 1 more...``; ``<none>`` without metrics.

    Statuses are matched to specs by position, as Kubernetes matches them.
    """
    if not specs:
        return "<none>"
    texts = [
        _metric_text(m(spec), m(statuses[n]) if n < len(statuses) else None)
        for n, spec in enumerate(specs)
    ]
    limit = 2
    if len(texts) > limit:
        return ", ".join(texts[:limit]) + f" + {len(texts) - limit} more..."
    return ", ".join(texts)


def hpa_cells(hpa: Obj, now: datetime) -> list[Cell]:
    spec, status = m(hpa.get("spec")), m(hpa.get("status"))
    ref = m(spec.get("scaleTargetRef"))
    min_replicas = spec.get("minReplicas")
    return [
        name_of(hpa),
        f"{s(ref.get('kind'))}/{s(ref.get('name'))}",
        format_hpa_metrics(lst(spec.get("metrics")), lst(status.get("currentMetrics"))),
        "<unset>" if min_replicas is None else str(i(min_replicas)),
        i(spec.get("maxReplicas")),
        i(status.get("currentReplicas")),
        created_age(hpa, now),
    ]


# ------------------------------------------------------------------ PodDisruptionBudget

PDB_COLUMNS = (
    NAME,
    Column(
        "Min Available",
        description="The minimum number or percentage of available pods this budget requires.",
    ),
    Column(
        "Max Unavailable",
        description="The maximum number or percentage of unavailable pods this budget requires.",
    ),
    Column(
        "Allowed Disruptions",
        type="integer",
        description="Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
)


def pdb_cells(pdb: Obj, now: datetime) -> list[Cell]:
    spec, status = m(pdb.get("spec")), m(pdb.get("status"))

    def budget(key: str) -> str:
        value = spec.get(key)
        return "N/A" if value is None else s(value)

    return [
        name_of(pdb),
        budget("minAvailable"),
        budget("maxUnavailable"),
        i(status.get("disruptionsAllowed")),
        created_age(pdb, now),
    ]


DEPLOYMENT = Printer(DEPLOYMENT_COLUMNS, deployment_cells)
REPLICA_SET = Printer(REPLICASET_COLUMNS, replicaset_cells)
DAEMON_SET = Printer(DAEMONSET_COLUMNS, daemonset_cells)
CONTROLLER_REVISION = Printer(CONTROLLER_REVISION_COLUMNS, controller_revision_cells)
JOB = Printer(JOB_COLUMNS, job_cells)
CRON_JOB = Printer(CRONJOB_COLUMNS, cronjob_cells)
HPA = Printer(HPA_COLUMNS, hpa_cells)
PDB = Printer(PDB_COLUMNS, pdb_cells)
