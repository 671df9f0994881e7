"""Kubernetes 1.32 defaulting (``SetDefaults_*``) for every served kind.

:func:`apply_defaults` fills in, in place, what Kubernetes fills in when it decodes a request
body: on every create and update, before validation. It only sets fields that are absent
(or empty, where Kubernetes checks for the zero value), so applying it twice changes
nothing. Kinds Kubernetes does not default (Ingress, ConfigMap, ServiceAccount, Event, Lease,
Role, ClusterRole) are left as they are.

Create-only steps of Kubernetes' registry strategies (namespace finalizers, initial status)
belong to the API server; :func:`generate_job_selector` is provided for the Job one because
it needs the rules kept here. Pure data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procorch.api.defaults import core, other, pod, workloads
from procorch.api.defaults.pod import image_pull_policy
from procorch.api.defaults.workloads import generate_job_selector

Defaulter = Callable[[dict[str, Any]], None]

DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    ("v1", "Pod"): pod.pod,
    ("v1", "Service"): core.service,
    ("v1", "Secret"): core.secret,
    ("v1", "ConfigMap"): core.config_map,
    ("v1", "Namespace"): core.namespace,
    ("v1", "Endpoints"): core.endpoints,
    ("v1", "PersistentVolumeClaim"): core.persistent_volume_claim,
    ("v1", "Node"): core.node,
    ("v1", "PersistentVolume"): core.persistent_volume,
    ("v1", "ReplicationController"): workloads.replication_controller,
    ("apps/v1", "StatefulSet"): workloads.stateful_set,
    ("apps/v1", "Deployment"): workloads.deployment,
    ("apps/v1", "ReplicaSet"): workloads.replica_set,
    ("apps/v1", "DaemonSet"): workloads.daemon_set,
    ("batch/v1", "Job"): workloads.job,
    ("batch/v1", "CronJob"): workloads.cron_job,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): other.horizontal_pod_autoscaler,
    ("networking.k8s.io/v1", "IngressClass"): other.ingress_class,
    ("discovery.k8s.io/v1", "EndpointSlice"): other.endpoint_slice,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): other.role_binding,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): other.role_binding,
}


def apply_defaults(api_version: str, kind: str, obj: dict[str, Any]) -> None:
    """Fill in Kubernetes' defaults for ``kind`` in ``obj``, in place. Values of the wrong
    type are left alone for validation to report; this never raises on bad input."""
    if not isinstance(obj, dict):
        return
    defaulter = DEFAULTERS.get((api_version, kind))
    if defaulter is None:
        return
    try:
        defaulter(obj)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        # A value of an unexpected type stopped defaulting part-way; validation reports it.
        return


__all__ = ["DEFAULTERS", "apply_defaults", "generate_job_selector", "image_pull_policy"]
