"""The kinds procorch stores but does not run yet: core/v1 ReplicationController and
PersistentVolume, apps/v1 StatefulSet.

They are served so that everything a client expects of them works (``kubectl apply --prune``
lists them through its built-in allowlist; manifests that contain them apply), and a write of
one carries a warning saying nothing runs it. A PersistentVolume's many volume sources are
free-form here: procorch binds claims to node-local directories and reads none of them.
Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import ListMap
from procorch.api.types.apps import ReplicaSetCondition, ReplicaSetStatus
from procorch.api.types.base import (
    FreeForm,
    Int32,
    Int64,
    IntOrString,
    K8sModel,
    K8sObject,
    LabelSelectorAtomic,
    ObjectReference,
    ResourceList,
    StringMap,
    Time,
)
from procorch.api.types.core import PersistentVolumeClaim
from procorch.api.types.core_pod import PodTemplateSpec

# --- ReplicationController (core/v1) -----------------------------------------------------------


class ReplicationControllerSpec(K8sModel):
    replicas: Int32 | None = None
    minReadySeconds: Int32 | None = None
    selector: StringMap | None = None
    template: PodTemplateSpec | None = None


class ReplicationController(K8sObject):
    spec: ReplicationControllerSpec | None = None
    status: ReplicaSetStatus | None = None  # the same fields as v1.ReplicationControllerStatus


# --- PersistentVolume (core/v1) ----------------------------------------------------------------


class PersistentVolumeSpec(K8sModel):
    accessModes: list[str] | None = None
    capacity: ResourceList | None = None
    claimRef: ObjectReference | None = None
    mountOptions: list[str] | None = None
    nodeAffinity: FreeForm | None = None
    persistentVolumeReclaimPolicy: str | None = None
    storageClassName: str | None = None
    volumeAttributesClassName: str | None = None
    volumeMode: str | None = None
    awsElasticBlockStore: FreeForm | None = None
    azureDisk: FreeForm | None = None
    azureFile: FreeForm | None = None
    cephfs: FreeForm | None = None
    cinder: FreeForm | None = None
    csi: FreeForm | None = None
    fc: FreeForm | None = None
    flexVolume: FreeForm | None = None
    flocker: FreeForm | None = None
    gcePersistentDisk: FreeForm | None = None
    glusterfs: FreeForm | None = None
    hostPath: FreeForm | None = None
    iscsi: FreeForm | None = None
    local: FreeForm | None = None
    nfs: FreeForm | None = None
    photonPersistentDisk: FreeForm | None = None
    portworxVolume: FreeForm | None = None
    quobyte: FreeForm | None = None
    rbd: FreeForm | None = None
    scaleIO: FreeForm | None = None
    storageos: FreeForm | None = None
    vsphereVolume: FreeForm | None = None


class PersistentVolumeStatus(K8sModel):
    phase: str | None = None
    message: str | None = None
    reason: str | None = None
    lastPhaseTransitionTime: Time | None = None


class PersistentVolume(K8sObject):
    spec: PersistentVolumeSpec | None = None
    status: PersistentVolumeStatus | None = None


# --- StatefulSet (apps/v1) ---------------------------------------------------------------------


class RollingUpdateStatefulSetStrategy(K8sModel):
    partition: Int32 | None = None
    maxUnavailable: IntOrString | None = None


class StatefulSetUpdateStrategy(K8sModel):
    type: str | None = None
    rollingUpdate: RollingUpdateStatefulSetStrategy | None = None


class StatefulSetOrdinals(K8sModel):
    start: Int32 | None = None


class StatefulSetPersistentVolumeClaimRetentionPolicy(K8sModel):
    whenDeleted: str | None = None
    whenScaled: str | None = None


class StatefulSetSpec(K8sModel):
    replicas: Int32 | None = None
    selector: LabelSelectorAtomic | None = None
    template: PodTemplateSpec | None = None
    volumeClaimTemplates: list[PersistentVolumeClaim] | None = None
    serviceName: str | None = None
    podManagementPolicy: str | None = None
    updateStrategy: StatefulSetUpdateStrategy | None = None
    revisionHistoryLimit: Int32 | None = None
    minReadySeconds: Int32 | None = None
    persistentVolumeClaimRetentionPolicy: StatefulSetPersistentVolumeClaimRetentionPolicy | None = (
        None
    )
    ordinals: StatefulSetOrdinals | None = None


class StatefulSetStatus(K8sModel):
    observedGeneration: Int64 | None = None
    replicas: Int32 | None = None
    readyReplicas: Int32 | None = None
    currentReplicas: Int32 | None = None
    updatedReplicas: Int32 | None = None
    currentRevision: str | None = None
    updateRevision: str | None = None
    collisionCount: Int32 | None = None
    conditions: Annotated[list[ReplicaSetCondition] | None, ListMap("type")] = None
    availableReplicas: Int32 | None = None


class StatefulSet(K8sObject):
    spec: StatefulSetSpec | None = None
    status: StatefulSetStatus | None = None
