"""apps/v1 kinds: Deployment, ReplicaSet, DaemonSet and ControllerRevision, with their spec,
strategy and status types.

Pure data.
"""

from __future__ import annotations

from typing import Annotated, Any

from procorch.api.schema import ListMap, RetainKeys
from procorch.api.types.base import (
    Int32,
    Int64,
    IntOrString,
    K8sModel,
    K8sObject,
    LabelSelectorAtomic,
    Time,
)
from procorch.api.types.core_pod import PodTemplateSpec

# --- Deployment -----------------------------------------------------------------------------


class RollingUpdateDeployment(K8sModel):
    maxUnavailable: IntOrString | None = None
    maxSurge: IntOrString | None = None


class DeploymentStrategy(K8sModel):
    type: str | None = None
    rollingUpdate: RollingUpdateDeployment | None = None


class DeploymentSpec(K8sModel):
    replicas: Int32 | None = None
    selector: LabelSelectorAtomic | None = None
    template: PodTemplateSpec | None = None
    # retainKeys: switching type to Recreate in a patch drops the old rollingUpdate.
    strategy: Annotated[DeploymentStrategy | None, RetainKeys()] = None
    minReadySeconds: Int32 | None = None
    revisionHistoryLimit: Int32 | None = None
    paused: bool | None = None
    progressDeadlineSeconds: Int32 | None = None


class DeploymentCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastUpdateTime: Time | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class DeploymentStatus(K8sModel):
    observedGeneration: Int64 | None = None
    replicas: Int32 | None = None
    updatedReplicas: Int32 | None = None
    readyReplicas: Int32 | None = None
    availableReplicas: Int32 | None = None
    unavailableReplicas: Int32 | None = None
    conditions: Annotated[list[DeploymentCondition] | None, ListMap("type")] = None
    collisionCount: Int32 | None = None


class Deployment(K8sObject):
    spec: DeploymentSpec | None = None
    status: DeploymentStatus | None = None


# --- ReplicaSet -----------------------------------------------------------------------------


class ReplicaSetSpec(K8sModel):
    replicas: Int32 | None = None
    minReadySeconds: Int32 | None = None
    selector: LabelSelectorAtomic | None = None
    template: PodTemplateSpec | None = None


class ReplicaSetCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class ReplicaSetStatus(K8sModel):
    replicas: Int32 | None = None
    fullyLabeledReplicas: Int32 | None = None
    readyReplicas: Int32 | None = None
    availableReplicas: Int32 | None = None
    observedGeneration: Int64 | None = None
    conditions: Annotated[list[ReplicaSetCondition] | None, ListMap("type")] = None


class ReplicaSet(K8sObject):
    spec: ReplicaSetSpec | None = None
    status: ReplicaSetStatus | None = None


# --- DaemonSet ------------------------------------------------------------------------------

TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
"""A DaemonSet's template generation (``spec.templateGeneration`` before apps/v1): the API
server counts it, the controller labels its pods with it (``pod-template-generation``)."""


class RollingUpdateDaemonSet(K8sModel):
    maxUnavailable: IntOrString | None = None
    maxSurge: IntOrString | None = None


class DaemonSetUpdateStrategy(K8sModel):
    type: str | None = None
    rollingUpdate: RollingUpdateDaemonSet | None = None


class DaemonSetSpec(K8sModel):
    selector: LabelSelectorAtomic | None = None
    template: PodTemplateSpec | None = None
    updateStrategy: DaemonSetUpdateStrategy | None = None
    minReadySeconds: Int32 | None = None
    revisionHistoryLimit: Int32 | None = None


class DaemonSetCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class DaemonSetStatus(K8sModel):
    currentNumberScheduled: Int32 | None = None
    numberMisscheduled: Int32 | None = None
    desiredNumberScheduled: Int32 | None = None
    numberReady: Int32 | None = None
    observedGeneration: Int64 | None = None
    updatedNumberScheduled: Int32 | None = None
    numberAvailable: Int32 | None = None
    numberUnavailable: Int32 | None = None
    collisionCount: Int32 | None = None
    conditions: Annotated[list[DaemonSetCondition] | None, ListMap("type")] = None


class DaemonSet(K8sObject):
    spec: DaemonSetSpec | None = None
    status: DaemonSetStatus | None = None


# --- ControllerRevision ---------------------------------------------------------------------


class ControllerRevision(K8sObject):
    """An immutable snapshot of a controller's template (a DaemonSet's, here): ``data`` is
    any JSON (a ``runtime.RawExtension``), ``revision`` its number in the history."""

    data: Any = None
    revision: Int64 | None = None
