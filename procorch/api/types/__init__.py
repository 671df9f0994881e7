"""The type models of every served kind, looked up by ``apiVersion`` and ``kind``.

:func:`model_for` gives the pydantic model that decodes a request body or a stored object;
:func:`schema_for` gives the :class:`~procorch.api.schema.SchemaNode` that strategic merge
patch and server-side apply walk. Besides the kinds of :mod:`procorch.api.resources`, the
bodies of subresources and options are here too: ``Scale``, ``Binding``, ``Eviction`` and
``DeleteOptions``. Pure data.
"""

from __future__ import annotations

from procorch.api.schema import SchemaNode, node_for
from procorch.api.types.apiextensions import CustomResourceDefinition
from procorch.api.types.apps import ControllerRevision, DaemonSet, Deployment, ReplicaSet
from procorch.api.types.autoscaling import HorizontalPodAutoscaler, Scale
from procorch.api.types.base import K8sModel
from procorch.api.types.batch import CronJob, Job
from procorch.api.types.coordination import Lease
from procorch.api.types.core import (
    Binding,
    ConfigMap,
    Endpoints,
    Event,
    Namespace,
    Node,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from procorch.api.types.discovery import EndpointSlice
from procorch.api.types.inert import PersistentVolume, ReplicationController, StatefulSet
from procorch.api.types.meta import DeleteOptions
from procorch.api.types.networking import Ingress, IngressClass
from procorch.api.types.policy import Eviction, PodDisruptionBudget
from procorch.api.types.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding

_RBAC = "rbac.authorization.k8s.io/v1"

MODELS: dict[tuple[str, str], type[K8sModel]] = {
    ("v1", "Namespace"): Namespace,
    ("v1", "Pod"): Pod,
    ("v1", "Node"): Node,
    ("v1", "ConfigMap"): ConfigMap,
    ("v1", "Secret"): Secret,
    ("v1", "Service"): Service,
    ("v1", "Endpoints"): Endpoints,
    ("v1", "Event"): Event,
    ("v1", "ServiceAccount"): ServiceAccount,
    ("v1", "PersistentVolumeClaim"): PersistentVolumeClaim,
    ("v1", "Binding"): Binding,
    ("v1", "ReplicationController"): ReplicationController,
    ("v1", "PersistentVolume"): PersistentVolume,
    ("apps/v1", "StatefulSet"): StatefulSet,
    ("apps/v1", "Deployment"): Deployment,
    ("apps/v1", "ReplicaSet"): ReplicaSet,
    ("apps/v1", "DaemonSet"): DaemonSet,
    ("apps/v1", "ControllerRevision"): ControllerRevision,
    ("batch/v1", "Job"): Job,
    ("batch/v1", "CronJob"): CronJob,
    ("networking.k8s.io/v1", "Ingress"): Ingress,
    ("networking.k8s.io/v1", "IngressClass"): IngressClass,
    ("discovery.k8s.io/v1", "EndpointSlice"): EndpointSlice,
    ("coordination.k8s.io/v1", "Lease"): Lease,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): HorizontalPodAutoscaler,
    ("autoscaling/v1", "Scale"): Scale,
    ("policy/v1", "Eviction"): Eviction,
    ("policy/v1", "PodDisruptionBudget"): PodDisruptionBudget,
    (_RBAC, "Role"): Role,
    (_RBAC, "RoleBinding"): RoleBinding,
    (_RBAC, "ClusterRole"): ClusterRole,
    (_RBAC, "ClusterRoleBinding"): ClusterRoleBinding,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): CustomResourceDefinition,
}

# Kinds Kubernetes registers in every group version (metav1.AddToGroupVersion), so a DELETE
# body says ``apiVersion: v1``, ``meta.k8s.io/v1`` or the resource's own group version.
_ANY_VERSION: dict[str, type[K8sModel]] = {"DeleteOptions": DeleteOptions}


def model_for(api_version: str, kind: str) -> type[K8sModel] | None:
    """The model of a top-level kind, or ``None`` when procorch does not serve it."""
    return MODELS.get((api_version, kind)) or _ANY_VERSION.get(kind)


def schema_for(api_version: str, kind: str) -> SchemaNode | None:
    """The schema root of a top-level kind, for patch and apply; ``None`` when not served."""
    model = model_for(api_version, kind)
    return None if model is None else node_for(model)
