"""Semantic validation of every served kind, as Kubernetes 1.32 validates it.

:func:`validate` takes an object as received (a JSON dict, after defaulting) and returns every
problem found as a :class:`~procorch.api.errors.Cause` with Kubernetes' field path and
message; given ``old``, it also applies the update rules (immutable fields, allowed
changes). It never raises for bad input: a value of the wrong type reads as absent, since the
shape models in :mod:`procorch.api.types` report types.

One module per group of kinds; this module only dispatches. Pure data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procorch.api.errors import Cause, forbidden, invalid
from procorch.api.resources import by_kind
from procorch.api.validation import (
    apps,
    autoscaling,
    batch,
    cluster,
    config,
    networking,
    policy,
    rbac,
)
from procorch.api.validation._base import as_dict
from procorch.api.validation.containers import COMMAND_REQUIRED
from procorch.api.validation.meta import (
    name_rule,
    validate_object_meta,
    validate_object_meta_update,
)
from procorch.api.validation.pod import validate_pod, validate_pod_update
from procorch.api.validation.service import validate_service

Validator = Callable[[dict[str, Any], "dict[str, Any] | None"], list[Cause]]


def _pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes = validate_pod(obj)
    if old is not None:
        causes += validate_pod_update(obj, old)
    elif (obj.get("spec") or {}).get("ephemeralContainers"):
        causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    return causes


def _crd(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    # The CRD rules live with what serves CRDs, which needs this module's tables first.
    from procorch.api.crd.definition import validate_crd  # noqa: PLC0415

    return validate_crd(obj, old)


VALIDATORS: dict[tuple[str, str], Validator] = {
    ("v1", "Pod"): _pod,
    ("v1", "Service"): validate_service,
    ("v1", "Secret"): config.validate_secret,
    ("v1", "ConfigMap"): config.validate_config_map,
    ("v1", "Namespace"): cluster.validate_namespace,
    ("v1", "Node"): cluster.validate_node,
    ("v1", "Endpoints"): cluster.validate_endpoints,
    ("v1", "Event"): cluster.validate_event,
    ("v1", "ServiceAccount"): cluster.validate_service_account,
    ("v1", "PersistentVolumeClaim"): cluster.validate_pvc,
    ("apps/v1", "Deployment"): apps.validate_deployment,
    ("apps/v1", "ReplicaSet"): apps.validate_replica_set,
    ("apps/v1", "DaemonSet"): apps.validate_daemon_set,
    ("apps/v1", "StatefulSet"): apps.validate_stateful_set,
    ("v1", "ReplicationController"): apps.validate_replication_controller,
    ("v1", "PersistentVolume"): cluster.validate_persistent_volume,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): _crd,
    ("apps/v1", "ControllerRevision"): apps.validate_controller_revision,
    ("batch/v1", "Job"): batch.validate_job,
    ("batch/v1", "CronJob"): batch.validate_cron_job,
    ("networking.k8s.io/v1", "Ingress"): networking.validate_ingress,
    ("networking.k8s.io/v1", "IngressClass"): networking.validate_ingress_class,
    ("discovery.k8s.io/v1", "EndpointSlice"): cluster.validate_endpoint_slice,
    ("coordination.k8s.io/v1", "Lease"): cluster.validate_lease,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): autoscaling.validate_hpa,
    ("policy/v1", "PodDisruptionBudget"): policy.validate_pdb,
    ("rbac.authorization.k8s.io/v1", "Role"): rbac.validate_role,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): rbac.validate_cluster_role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): rbac.validate_role_binding,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): rbac.validate_cluster_role_binding,
}


def validate(
    api_version: str, kind: str, obj: dict[str, Any], *, old: dict[str, Any] | None = None
) -> list[Cause]:
    """Every semantic problem with ``obj`` (and, on update, with changing ``old`` into it)."""
    if not isinstance(obj, dict):
        return [invalid("", obj, "must be an object")]
    if old is not None and not isinstance(old, dict):
        old = None
    causes: list[Cause] = []
    try:
        if old is not None and kind != "Event":
            causes += validate_object_meta_update(obj.get("metadata"), old.get("metadata"))
        validator = VALIDATORS.get((api_version, kind))
        if validator is not None:
            causes += validator(obj, old)
        else:
            rt = by_kind(api_version, kind)
            if rt is not None:
                causes += validate_object_meta(
                    obj.get("metadata"), namespaced=rt.namespaced, name_fn=name_rule(kind)
                )
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # A validator tripped over a value it did not expect: report it rather than fail
        # the request with a 500.
        causes.append(invalid("", as_dict(obj).get("kind", kind), f"could not be validated: {exc}"))
    return causes


__all__ = ["COMMAND_REQUIRED", "VALIDATORS", "validate"]
