"""The registry of resource definitions: everything procorch does with each kind it serves.

A :class:`Definition` joins a served :class:`~procorch.api.resources.ResourceType` (its
names, scope and subresources, declared in :mod:`procorch.api.resources`) with what the API
server does with its objects: the model that checks their shape, Kubernetes' defaults,
semantic validation, the write strategy (create, update and delete rules, admission) and the
columns of ``kubectl get``. The built-in kinds are declared below, one entry each; a
CustomResourceDefinition adds one per served version while it exists
(:mod:`procorch.api.crd.serving`). Whatever depends on the kind asks here, so a kind's
behaviour is found, and changed, in one place. Pure data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from procorch.api import printers, resources, strategy
from procorch.api.crd.definition import validate_crd
from procorch.api.defaults import core as core_defaults
from procorch.api.defaults import other as other_defaults
from procorch.api.defaults import pod as pod_defaults
from procorch.api.defaults import workloads as workload_defaults
from procorch.api.errors import Cause, invalid
from procorch.api.printers import Printer
from procorch.api.printers import cluster as cluster_printers
from procorch.api.printers import core as core_printers
from procorch.api.printers import pods as pod_printers
from procorch.api.printers import workloads as workload_printers
from procorch.api.resources import ResourceType
from procorch.api.schema import SchemaNode, node_for
from procorch.api.selectors import fields
from procorch.api.selectors.fields import FieldSelector, SelectableFields
from procorch.api.strategy import Strategy
from procorch.api.types import (
    apiextensions,
    apps,
    autoscaling,
    batch,
    coordination,
    core,
    discovery,
    inert,
    model_for_body,
    networking,
    policy,
    rbac,
)
from procorch.api.types.base import K8sModel
from procorch.api.validation import apps as apps_rules
from procorch.api.validation import autoscaling as autoscaling_rules
from procorch.api.validation import batch as batch_rules
from procorch.api.validation import cluster as cluster_rules
from procorch.api.validation import config as config_rules
from procorch.api.validation import networking as networking_rules
from procorch.api.validation import policy as policy_rules
from procorch.api.validation import rbac as rbac_rules
from procorch.api.validation._base import as_dict
from procorch.api.validation.meta import (
    name_rule,
    validate_object_meta,
    validate_object_meta_update,
)
from procorch.api.validation.pod import validate_pod_write
from procorch.api.validation.service import validate_service

Obj = dict[str, Any]
Defaulter = Callable[[Obj], None]
Validator = Callable[[Obj, "Obj | None"], list[Cause]]
Pruner = Callable[[Obj], list[str]]


@dataclass(frozen=True, kw_only=True)
class Definition:
    """One served kind at one version, and everything the API server does with it."""

    resource: ResourceType
    model: type[K8sModel] | None = None
    """The shape of its objects (decoding, unknown fields, types, OpenAPI). A custom
    resource has none: its schema and pruner stand in."""
    default: Defaulter | None = None
    """Kubernetes' defaulting (``SetDefaults_*``), in place; only fills what is absent."""
    validate: Validator | None = None
    """Semantic validation given the object and, on update, the old one; ``None``: only
    the generic ``metadata`` rules."""
    metadata_update_rules: bool = True
    """Whether an update is held to the generic ``metadata`` update rules (core/v1 Events
    have a lenient legacy validation that is not)."""
    strategy: Strategy = strategy.DEFAULT
    printer: Printer = printers.DEFAULT
    fields: SelectableFields = fields.META_FIELDS
    """What a field selector may name (the kind's field-label conversion function)."""
    schema: Obj | None = None
    """A custom resource's ``openAPIV3Schema``."""
    prune: Pruner | None = None
    """A custom resource's pruning: drops fields its schema does not know, returns their
    paths."""

    @property
    def gvk(self) -> tuple[str, str]:
        return (self.resource.api_version, self.resource.kind)


def _builtin(key: str, model: type[K8sModel], **behaviour: Any) -> Definition:
    return Definition(resource=resources.must(key), model=model, **behaviour)


BUILTIN: tuple[Definition, ...] = (
    # core/v1
    _builtin(
        "core/namespaces",
        core.Namespace,
        default=core_defaults.namespace,
        validate=cluster_rules.validate_namespace,
        strategy=strategy.NAMESPACE,
        printer=core_printers.NAMESPACE,
        fields=fields.NAMESPACE_FIELDS,
    ),
    _builtin(
        "core/pods",
        core.Pod,
        default=pod_defaults.pod,
        validate=validate_pod_write,
        strategy=strategy.POD,
        printer=pod_printers.POD,
        fields=fields.POD_FIELDS,
    ),
    _builtin(
        "core/nodes",
        core.Node,
        default=core_defaults.node,
        validate=cluster_rules.validate_node,
        strategy=strategy.STATUS_FROM_WRITER,
        printer=core_printers.NODE,
        fields=fields.NODE_FIELDS,
    ),
    _builtin(
        "core/configmaps",
        core.ConfigMap,
        default=core_defaults.config_map,
        validate=config_rules.validate_config_map,
        printer=core_printers.CONFIG_MAP,
    ),
    _builtin(
        "core/secrets",
        core.Secret,
        default=core_defaults.secret,
        validate=config_rules.validate_secret,
        printer=core_printers.SECRET,
        fields=fields.SECRET_FIELDS,
    ),
    _builtin(
        "core/services",
        core.Service,
        default=core_defaults.service,
        validate=validate_service,
        strategy=strategy.SERVICE,
        printer=core_printers.SERVICE,
    ),
    _builtin(
        "core/endpoints",
        core.Endpoints,
        default=core_defaults.endpoints,
        validate=cluster_rules.validate_endpoints,
        printer=core_printers.ENDPOINTS,
    ),
    _builtin(
        "core/events",
        core.Event,
        validate=cluster_rules.validate_event,
        metadata_update_rules=False,
        printer=core_printers.EVENT,
        fields=fields.EVENT_FIELDS,
    ),
    _builtin(
        "core/serviceaccounts",
        core.ServiceAccount,
        validate=cluster_rules.validate_service_account,
        strategy=strategy.RETURNS_DELETED,
        printer=core_printers.SERVICE_ACCOUNT,
    ),
    _builtin(
        "core/persistentvolumeclaims",
        core.PersistentVolumeClaim,
        default=core_defaults.persistent_volume_claim,
        validate=cluster_rules.validate_pvc,
        strategy=strategy.PVC,
        printer=core_printers.PVC,
    ),
    # apps/v1
    _builtin(
        "apps/deployments",
        apps.Deployment,
        default=workload_defaults.deployment,
        validate=apps_rules.validate_deployment,
        printer=workload_printers.DEPLOYMENT,
    ),
    _builtin(
        "apps/replicasets",
        apps.ReplicaSet,
        default=workload_defaults.replica_set,
        validate=apps_rules.validate_replica_set,
        strategy=strategy.REPLICA_SET,
        printer=workload_printers.REPLICA_SET,
        fields=fields.REPLICAS_FIELDS,
    ),
    _builtin(
        "apps/daemonsets",
        apps.DaemonSet,
        default=workload_defaults.daemon_set,
        validate=apps_rules.validate_daemon_set,
        strategy=strategy.DAEMON_SET,
        printer=workload_printers.DAEMON_SET,
    ),
    _builtin(
        "apps/controllerrevisions",
        apps.ControllerRevision,
        validate=apps_rules.validate_controller_revision,
        printer=workload_printers.CONTROLLER_REVISION,
    ),
    # batch/v1
    _builtin(
        "batch/jobs",
        batch.Job,
        default=workload_defaults.job,
        validate=batch_rules.validate_job,
        strategy=strategy.JOB,
        printer=workload_printers.JOB,
        fields=fields.JOB_FIELDS,
    ),
    _builtin(
        "batch/cronjobs",
        batch.CronJob,
        default=workload_defaults.cron_job,
        validate=batch_rules.validate_cron_job,
        printer=workload_printers.CRON_JOB,
    ),
    # networking.k8s.io/v1, discovery.k8s.io/v1, coordination.k8s.io/v1
    _builtin(
        "networking.k8s.io/ingresses",
        networking.Ingress,
        validate=networking_rules.validate_ingress,
        strategy=strategy.INGRESS,
        printer=cluster_printers.INGRESS,
    ),
    _builtin(
        "networking.k8s.io/ingressclasses",
        networking.IngressClass,
        default=other_defaults.ingress_class,
        validate=networking_rules.validate_ingress_class,
        printer=cluster_printers.INGRESS_CLASS,
    ),
    _builtin(
        "discovery.k8s.io/endpointslices",
        discovery.EndpointSlice,
        default=other_defaults.endpoint_slice,
        validate=cluster_rules.validate_endpoint_slice,
        printer=cluster_printers.ENDPOINT_SLICE,
    ),
    _builtin(
        "coordination.k8s.io/leases",
        coordination.Lease,
        validate=cluster_rules.validate_lease,
        printer=cluster_printers.LEASE,
    ),
    # Stored, not run (procorch.api.types.inert): kubectl apply --prune's allowlist.
    _builtin(
        "core/replicationcontrollers",
        inert.ReplicationController,
        default=workload_defaults.replication_controller,
        validate=apps_rules.validate_replication_controller,
        strategy=strategy.REPLICATION_CONTROLLER,
        fields=fields.REPLICAS_FIELDS,
    ),
    _builtin(
        "core/persistentvolumes",
        inert.PersistentVolume,
        default=core_defaults.persistent_volume,
        validate=cluster_rules.validate_persistent_volume,
        strategy=strategy.PERSISTENT_VOLUME,
    ),
    _builtin(
        "apps/statefulsets",
        inert.StatefulSet,
        default=workload_defaults.stateful_set,
        validate=apps_rules.validate_stateful_set,
        strategy=strategy.STATEFUL_SET,
    ),
    # apiextensions.k8s.io/v1
    _builtin(
        "apiextensions.k8s.io/customresourcedefinitions",
        apiextensions.CustomResourceDefinition,
        validate=validate_crd,
        strategy=strategy.CRD,
    ),
    # autoscaling/v2, policy/v1
    _builtin(
        "autoscaling/horizontalpodautoscalers",
        autoscaling.HorizontalPodAutoscaler,
        default=other_defaults.horizontal_pod_autoscaler,
        validate=autoscaling_rules.validate_hpa,
        strategy=strategy.HPA,
        printer=workload_printers.HPA,
    ),
    _builtin(
        "policy/poddisruptionbudgets",
        policy.PodDisruptionBudget,
        validate=policy_rules.validate_pdb,
        printer=workload_printers.PDB,
    ),
    # rbac.authorization.k8s.io/v1
    _builtin("rbac.authorization.k8s.io/roles", rbac.Role, validate=rbac_rules.validate_role),
    _builtin(
        "rbac.authorization.k8s.io/rolebindings",
        rbac.RoleBinding,
        default=other_defaults.role_binding,
        validate=rbac_rules.validate_role_binding,
        printer=cluster_printers.BINDING,
    ),
    _builtin(
        "rbac.authorization.k8s.io/clusterroles",
        rbac.ClusterRole,
        validate=rbac_rules.validate_cluster_role,
    ),
    _builtin(
        "rbac.authorization.k8s.io/clusterrolebindings",
        rbac.ClusterRoleBinding,
        default=other_defaults.role_binding,
        validate=rbac_rules.validate_cluster_role_binding,
        printer=cluster_printers.BINDING,
    ),
)

_BY_GVK: dict[tuple[str, str], Definition] = {d.gvk: d for d in BUILTIN}


def register(definitions: list[Definition]) -> None:
    """Serve ``definitions`` (a CustomResourceDefinition's versions, its storage version
    first): their resource types and their behaviour, together."""
    for d in definitions:
        if d.gvk in _BY_GVK:
            raise ValueError(f"{d.resource.kind} in {d.resource.api_version} is already served")
    resources.register([d.resource for d in definitions])
    _BY_GVK.update((d.gvk, d) for d in definitions)


def unregister(group: str, plural: str) -> list[ResourceType]:
    """Stop serving the custom resource ``plural.group``; the types that were served."""
    gone = resources.unregister(group, plural)
    for rt in gone:
        _BY_GVK.pop((rt.api_version, rt.kind), None)
    return gone


def definition(api_version: str, kind: str) -> Definition | None:
    return _BY_GVK.get((api_version, kind))


def of(rt: ResourceType) -> Definition:
    """The definition of a served resource type."""
    return _BY_GVK[(rt.api_version, rt.kind)]


def strategy_for(rt: ResourceType) -> Strategy:
    """``rt``'s write strategy (the default one for a custom resource whose CRD went away
    while a request on it was under way)."""
    found = _BY_GVK.get((rt.api_version, rt.kind))
    return found.strategy if found is not None else strategy.DEFAULT


def printer_for(rt: ResourceType) -> Printer:
    found = _BY_GVK.get((rt.api_version, rt.kind))
    return found.printer if found is not None else printers.DEFAULT


def validate_fields(rt: ResourceType, selector: FieldSelector) -> FieldSelector:
    """Refuse fields ``rt``'s objects cannot be selected on (Kubernetes' message); the
    selector with old spellings rewritten."""
    found = _BY_GVK.get((rt.api_version, rt.kind))
    return (found.fields if found is not None else fields.META_FIELDS).validate(selector)


def model_for(api_version: str, kind: str) -> type[K8sModel] | None:
    """The model that decodes a body of ``kind``: a served kind's, or a subresource's or an
    option's (``Scale``, ``Binding``, ``Eviction``, ``DeleteOptions``); ``None`` for a
    custom resource or a kind procorch does not know."""
    found = _BY_GVK.get((api_version, kind))
    if found is not None:
        return found.model
    return model_for_body(api_version, kind)


def schema_for(api_version: str, kind: str) -> SchemaNode | None:
    """The schema root of a top-level kind, for patch and apply; ``None`` when not served."""
    model = model_for(api_version, kind)
    return None if model is None else node_for(model)


def apply_defaults(api_version: str, kind: str, obj: Obj) -> None:
    """Fill in Kubernetes' defaults for ``kind`` in ``obj``, in place. Values of the wrong
    type are left alone for validation to report; this never raises on bad input."""
    found = _BY_GVK.get((api_version, kind))
    if found is None or found.default is None or not isinstance(obj, dict):
        return
    try:
        found.default(obj)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        # A value of an unexpected type stopped defaulting part-way; validation reports it.
        return


def validate(api_version: str, kind: str, obj: Obj, *, old: Obj | None = None) -> list[Cause]:
    """Every semantic problem with ``obj`` (and, on update, with changing ``old`` into it),
    with Kubernetes' field paths and messages. Never raises for bad input: a value of the
    wrong type reads as absent, since the shape models report types."""
    if not isinstance(obj, dict):
        return [invalid("", obj, "must be an object")]
    if old is not None and not isinstance(old, dict):
        old = None
    found = _BY_GVK.get((api_version, kind))
    causes: list[Cause] = []
    try:
        if old is not None and (found is None or found.metadata_update_rules):
            causes += validate_object_meta_update(obj.get("metadata"), old.get("metadata"))
        if found is not None and found.validate is not None:
            causes += found.validate(obj, old)
        elif found is not None:
            causes += validate_object_meta(
                obj.get("metadata"), namespaced=found.resource.namespaced, name_fn=name_rule(kind)
            )
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # A validator tripped over a value it did not expect: report it rather than fail
        # the request with a 500.
        causes.append(invalid("", as_dict(obj).get("kind", kind), f"could not be validated: {exc}"))
    return causes


__all__ = [
    "BUILTIN",
    "Definition",
    "apply_defaults",
    "definition",
    "model_for",
    "of",
    "printer_for",
    "register",
    "schema_for",
    "strategy_for",
    "unregister",
    "validate",
    "validate_fields",
]
