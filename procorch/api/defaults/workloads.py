"""Defaults for the workload kinds: Deployment, ReplicaSet, DaemonSet (apps/v1), Job, CronJob
(batch/v1), and the pod templates inside them.

Mirrors Kubernetes 1.32's ``SetDefaults_Deployment``, ``SetDefaults_ReplicaSet``,
``SetDefaults_DaemonSet``,
``SetDefaults_Job`` (JobPodReplacementPolicy and JobBackoffLimitPerIndex on, as in 1.32) and
``SetDefaults_CronJob``. A CronJob's job template gets only pod-template defaults, as in
Kubernetes. :func:`generate_job_selector` is the Job registry's selector generation.
Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.defaults.pod import _dict, _dicts, pod_template, set_if_empty, set_missing

MAX_INT32 = 2**31 - 1
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


def _object(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """``parent[name]``, made an empty object when absent."""
    found = _dict(parent, name)
    if found is None:
        found = parent[name] = {}
    return found


def _rolling_update(spec: dict[str, Any], field: str, **rolling: Any) -> None:
    """A workload's update strategy: ``RollingUpdate`` unless set, with ``rolling``'s
    defaults under ``rollingUpdate`` when it is one."""
    strategy = _object(spec, field)
    set_if_empty(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        target = _object(strategy, "rollingUpdate")
        for name, value in rolling.items():
            set_missing(target, name, value)


def deployment(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_missing(spec, "replicas", 1)
    _rolling_update(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
    set_missing(spec, "revisionHistoryLimit", 10)
    set_missing(spec, "progressDeadlineSeconds", 600)
    pod_template(spec.get("template"))


def replica_set(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_missing(spec, "replicas", 1)
    pod_template(spec.get("template"))


def daemon_set(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _rolling_update(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
    set_missing(spec, "revisionHistoryLimit", 10)
    pod_template(spec.get("template"))


def job(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    set_missing(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    template = _dict(spec, "template")
    template_meta = _dict(template, "metadata") if template is not None else None
    labels = template_meta.get("labels") if template_meta is not None else None
    meta = _dict(obj, "metadata")
    if isinstance(labels, dict) and meta is not None and not meta.get("labels"):
        meta["labels"] = dict(labels)
    set_missing(spec, "completionMode", "NonIndexed")
    set_missing(spec, "suspend", False)
    policy = _dict(spec, "podFailurePolicy")
    if policy is not None:
        for rule in _dicts(policy, "rules"):
            for pattern in _dicts(rule, "onPodConditions"):
                set_if_empty(pattern, "status", "True")
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if policy is not None else "TerminatingOrFailed"
    pod_template(template)


def generate_job_selector(obj: dict[str, Any]) -> None:
    """What Kubernetes' Job registry does on create unless ``spec.manualSelector`` is true:
    label the pod template with the Job's name and uid (labels the user set are kept, and
    refused by validation if wrong) and select on the uid. Needs ``metadata.uid``; does
    nothing without it."""
    meta = _dict(obj, "metadata")
    spec = _dict(obj, "spec")
    if meta is None or spec is None or spec.get("manualSelector") is True:
        return
    uid, name = meta.get("uid"), meta.get("name")
    if not isinstance(uid, str) or not uid:
        return
    template = _dict(spec, "template")
    if template is None:
        template = spec["template"] = {}
    template_meta = _dict(template, "metadata")
    if template_meta is None:
        template_meta = template["metadata"] = {}
    labels = _dict(template_meta, "labels")
    if labels is None:
        labels = template_meta["labels"] = {}
    for label in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(label, name if isinstance(name, str) else "")
    for label in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(label, uid)
    selector = _dict(spec, "selector")
    if selector is None:
        selector = spec["selector"] = {}
    match_labels = _dict(selector, "matchLabels")
    if match_labels is None:
        match_labels = selector["matchLabels"] = {}
    match_labels.setdefault(CONTROLLER_UID_LABEL, uid)


def cron_job(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_if_empty(spec, "concurrencyPolicy", "Allow")
    set_missing(spec, "suspend", False)
    set_missing(spec, "successfulJobsHistoryLimit", 3)
    set_missing(spec, "failedJobsHistoryLimit", 1)
    job_template = _dict(spec, "jobTemplate")
    job_spec = _dict(job_template, "spec") if job_template is not None else None
    if job_spec is not None:
        pod_template(job_spec.get("template"))


def stateful_set(obj: dict[str, Any]) -> None:
    """Kubernetes' ``SetDefaults_StatefulSet`` (apps/v1)."""
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_missing(spec, "replicas", 1)
    set_if_empty(spec, "podManagementPolicy", "OrderedReady")
    _rolling_update(spec, "updateStrategy", partition=0)
    set_missing(spec, "revisionHistoryLimit", 10)
    retention = _object(spec, "persistentVolumeClaimRetentionPolicy")
    set_if_empty(retention, "whenDeleted", "Retain")
    set_if_empty(retention, "whenScaled", "Retain")
    pod_template(spec.get("template"))


def replication_controller(obj: dict[str, Any]) -> None:
    """Kubernetes' ``SetDefaults_ReplicationController``: one replica, and the selector and
    labels taken from the template's labels when absent."""
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_missing(spec, "replicas", 1)
    template = _dict(spec, "template")
    labels = ((template or {}).get("metadata") or {}).get("labels")
    if isinstance(labels, dict) and labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = obj.setdefault("metadata", {})
        if isinstance(meta, dict) and not meta.get("labels"):
            meta["labels"] = dict(labels)
    pod_template(template)
