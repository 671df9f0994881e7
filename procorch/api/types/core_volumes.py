"""core/v1 volumes: a pod's ``Volume`` with every volume source, and the claim types they use.

The sources procorch serves (emptyDir, hostPath, configMap, secret, persistentVolumeClaim,
downwardAPI, projected) and the ones it only decodes (ephemeral, csi, nfs, image and the
in-tree cloud sources of :mod:`procorch.api.types.core_volumes_legacy`) are all typed, so
strict decoding reports a misspelt field wherever it is. Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic
from procorch.api.types.base import (
    Int32,
    Int64,
    K8sModel,
    LabelSelectorAtomic,
    LocalObjectReferenceAtomic,
    ObjectMeta,
    Quantity,
    ResourceList,
    StringMap,
    TypedLocalObjectReferenceAtomic,
)
from procorch.api.types.core_volumes_legacy import (
    AWSElasticBlockStoreVolumeSource,
    AzureDiskVolumeSource,
    AzureFileVolumeSource,
    CephFSVolumeSource,
    CinderVolumeSource,
    FCVolumeSource,
    FlexVolumeSource,
    FlockerVolumeSource,
    GCEPersistentDiskVolumeSource,
    GitRepoVolumeSource,
    GlusterfsVolumeSource,
    ISCSIVolumeSource,
    PhotonPersistentDiskVolumeSource,
    PortworxVolumeSource,
    QuobyteVolumeSource,
    RBDVolumeSource,
    ScaleIOVolumeSource,
    StorageOSVolumeSource,
    VsphereVirtualDiskVolumeSource,
)

# --- selectors shared with env vars (downward API) -------------------------------------------


class ObjectFieldSelector(K8sModel):  # +structType=atomic
    apiVersion: str | None = None
    fieldPath: str | None = None


class ResourceFieldSelector(K8sModel):  # +structType=atomic
    containerName: str | None = None
    resource: str | None = None
    divisor: Quantity | None = None


ObjectFieldSelectorAtomic = Annotated[ObjectFieldSelector, Atomic()]
ResourceFieldSelectorAtomic = Annotated[ResourceFieldSelector, Atomic()]


class KeyToPath(K8sModel):
    key: str | None = None
    path: str | None = None
    mode: Int32 | None = None


# --- the common sources ---------------------------------------------------------------------


class HostPathVolumeSource(K8sModel):
    path: str | None = None
    type: str | None = None


class EmptyDirVolumeSource(K8sModel):
    medium: str | None = None
    sizeLimit: Quantity | None = None


class SecretVolumeSource(K8sModel):
    secretName: str | None = None
    items: list[KeyToPath] | None = None  # +listType=atomic
    defaultMode: Int32 | None = None
    optional: bool | None = None


class ConfigMapVolumeSource(K8sModel):
    name: str | None = None
    items: list[KeyToPath] | None = None  # +listType=atomic
    defaultMode: Int32 | None = None
    optional: bool | None = None


class PersistentVolumeClaimVolumeSource(K8sModel):
    claimName: str | None = None
    readOnly: bool | None = None


class DownwardAPIVolumeFile(K8sModel):
    path: str | None = None
    fieldRef: ObjectFieldSelectorAtomic | None = None
    resourceFieldRef: ResourceFieldSelectorAtomic | None = None
    mode: Int32 | None = None


class DownwardAPIVolumeSource(K8sModel):
    items: list[DownwardAPIVolumeFile] | None = None  # +listType=atomic
    defaultMode: Int32 | None = None


class NFSVolumeSource(K8sModel):
    server: str | None = None
    path: str | None = None
    readOnly: bool | None = None


class CSIVolumeSource(K8sModel):
    driver: str | None = None
    readOnly: bool | None = None
    fsType: str | None = None
    volumeAttributes: StringMap | None = None
    nodePublishSecretRef: LocalObjectReferenceAtomic | None = None


class ImageVolumeSource(K8sModel):
    reference: str | None = None
    pullPolicy: str | None = None


# --- projected ------------------------------------------------------------------------------


class SecretProjection(K8sModel):
    name: str | None = None
    items: list[KeyToPath] | None = None  # +listType=atomic
    optional: bool | None = None


class ConfigMapProjection(K8sModel):
    name: str | None = None
    items: list[KeyToPath] | None = None  # +listType=atomic
    optional: bool | None = None


class DownwardAPIProjection(K8sModel):
    items: list[DownwardAPIVolumeFile] | None = None  # +listType=atomic


class ServiceAccountTokenProjection(K8sModel):
    audience: str | None = None
    expirationSeconds: Int64 | None = None
    path: str | None = None


class ClusterTrustBundleProjection(K8sModel):
    name: str | None = None
    signerName: str | None = None
    labelSelector: LabelSelectorAtomic | None = None
    optional: bool | None = None
    path: str | None = None


class VolumeProjection(K8sModel):
    secret: SecretProjection | None = None
    downwardAPI: DownwardAPIProjection | None = None
    configMap: ConfigMapProjection | None = None
    serviceAccountToken: ServiceAccountTokenProjection | None = None
    clusterTrustBundle: ClusterTrustBundleProjection | None = None


class ProjectedVolumeSource(K8sModel):
    sources: list[VolumeProjection] | None = None  # +listType=atomic
    defaultMode: Int32 | None = None


# --- claims (a PersistentVolumeClaim's spec, also inside an ephemeral volume) ---------------


class TypedObjectReference(K8sModel):
    apiGroup: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


class VolumeResourceRequirements(K8sModel):
    limits: ResourceList | None = None
    requests: ResourceList | None = None


class PersistentVolumeClaimSpec(K8sModel):
    accessModes: list[str] | None = None  # +listType=atomic
    selector: LabelSelectorAtomic | None = None
    resources: VolumeResourceRequirements | None = None
    volumeName: str | None = None
    storageClassName: str | None = None
    volumeMode: str | None = None
    dataSource: TypedLocalObjectReferenceAtomic | None = None
    dataSourceRef: TypedObjectReference | None = None
    volumeAttributesClassName: str | None = None


class PersistentVolumeClaimTemplate(K8sModel):
    metadata: ObjectMeta | None = None
    spec: PersistentVolumeClaimSpec | None = None


class EphemeralVolumeSource(K8sModel):
    volumeClaimTemplate: PersistentVolumeClaimTemplate | None = None


# --- the volume -----------------------------------------------------------------------------


class Volume(K8sModel):
    """A pod volume: a name and exactly one source (Go inlines VolumeSource here)."""

    name: str | None = None
    hostPath: HostPathVolumeSource | None = None
    emptyDir: EmptyDirVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    configMap: ConfigMapVolumeSource | None = None
    persistentVolumeClaim: PersistentVolumeClaimVolumeSource | None = None
    downwardAPI: DownwardAPIVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None
    ephemeral: EphemeralVolumeSource | None = None
    csi: CSIVolumeSource | None = None
    nfs: NFSVolumeSource | None = None
    image: ImageVolumeSource | None = None
    gcePersistentDisk: GCEPersistentDiskVolumeSource | None = None
    awsElasticBlockStore: AWSElasticBlockStoreVolumeSource | None = None
    gitRepo: GitRepoVolumeSource | None = None
    iscsi: ISCSIVolumeSource | None = None
    glusterfs: GlusterfsVolumeSource | None = None
    rbd: RBDVolumeSource | None = None
    flexVolume: FlexVolumeSource | None = None
    cinder: CinderVolumeSource | None = None
    cephfs: CephFSVolumeSource | None = None
    flocker: FlockerVolumeSource | None = None
    fc: FCVolumeSource | None = None
    azureFile: AzureFileVolumeSource | None = None
    vsphereVolume: VsphereVirtualDiskVolumeSource | None = None
    quobyte: QuobyteVolumeSource | None = None
    azureDisk: AzureDiskVolumeSource | None = None
    photonPersistentDisk: PhotonPersistentDiskVolumeSource | None = None
    portworxVolume: PortworxVolumeSource | None = None
    scaleIO: ScaleIOVolumeSource | None = None
    storageos: StorageOSVolumeSource | None = None
