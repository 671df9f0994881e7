"""core/v1 in-tree cloud and network volume sources (awsElasticBlockStore, rbd, iscsi, ...).

procorch cannot attach any of these; they are typed anyway so that a real manifest using one
is decoded as Kubernetes decodes it (unknown fields refused) and then refused by validation
with a clear message, instead of failing on shape. Pure data.
"""

from __future__ import annotations

from procorch.api.types.base import Int32, K8sModel, LocalObjectReferenceAtomic, StringMap


class AWSElasticBlockStoreVolumeSource(K8sModel):
    volumeID: str | None = None
    fsType: str | None = None
    partition: Int32 | None = None
    readOnly: bool | None = None


class AzureDiskVolumeSource(K8sModel):
    diskName: str | None = None
    diskURI: str | None = None
    cachingMode: str | None = None
    fsType: str | None = None
    readOnly: bool | None = None
    kind: str | None = None


class AzureFileVolumeSource(K8sModel):
    secretName: str | None = None
    shareName: str | None = None
    readOnly: bool | None = None


class CephFSVolumeSource(K8sModel):
    monitors: list[str] | None = None  # +listType=atomic
    path: str | None = None
    user: str | None = None
    secretFile: str | None = None
    secretRef: LocalObjectReferenceAtomic | None = None
    readOnly: bool | None = None


class CinderVolumeSource(K8sModel):
    volumeID: str | None = None
    fsType: str | None = None
    readOnly: bool | None = None
    secretRef: LocalObjectReferenceAtomic | None = None


class FCVolumeSource(K8sModel):
    targetWWNs: list[str] | None = None  # +listType=atomic
    lun: Int32 | None = None
    fsType: str | None = None
    readOnly: bool | None = None
    wwids: list[str] | None = None  # +listType=atomic


class FlexVolumeSource(K8sModel):
    driver: str | None = None
    fsType: str | None = None
    secretRef: LocalObjectReferenceAtomic | None = None
    readOnly: bool | None = None
    options: StringMap | None = None


class FlockerVolumeSource(K8sModel):
    datasetName: str | None = None
    datasetUUID: str | None = None


class GCEPersistentDiskVolumeSource(K8sModel):
    pdName: str | None = None
    fsType: str | None = None
    partition: Int32 | None = None
    readOnly: bool | None = None


class GitRepoVolumeSource(K8sModel):
    repository: str | None = None
    revision: str | None = None
    directory: str | None = None


class GlusterfsVolumeSource(K8sModel):
    endpoints: str | None = None
    path: str | None = None
    readOnly: bool | None = None


class ISCSIVolumeSource(K8sModel):
    targetPortal: str | None = None
    iqn: str | None = None
    lun: Int32 | None = None
    iscsiInterface: str | None = None
    fsType: str | None = None
    readOnly: bool | None = None
    portals: list[str] | None = None  # +listType=atomic
    chapAuthDiscovery: bool | None = None
    chapAuthSession: bool | None = None
    secretRef: LocalObjectReferenceAtomic | None = None
    initiatorName: str | None = None


class PhotonPersistentDiskVolumeSource(K8sModel):
    pdID: str | None = None
    fsType: str | None = None


class PortworxVolumeSource(K8sModel):
    volumeID: str | None = None
    fsType: str | None = None
    readOnly: bool | None = None


class QuobyteVolumeSource(K8sModel):
    registry: str | None = None
    volume: str | None = None
    readOnly: bool | None = None
    user: str | None = None
    group: str | None = None
    tenant: str | None = None


class RBDVolumeSource(K8sModel):
    monitors: list[str] | None = None  # +listType=atomic
    image: str | None = None
    fsType: str | None = None
    pool: str | None = None
    user: str | None = None
    keyring: str | None = None
    secretRef: LocalObjectReferenceAtomic | None = None
    readOnly: bool | None = None


class ScaleIOVolumeSource(K8sModel):
    gateway: str | None = None
    system: str | None = None
    secretRef: LocalObjectReferenceAtomic | None = None
    sslEnabled: bool | None = None
    protectionDomain: str | None = None
    storagePool: str | None = None
    storageMode: str | None = None
    volumeName: str | None = None
    fsType: str | None = None
    readOnly: bool | None = None


class StorageOSVolumeSource(K8sModel):
    volumeName: str | None = None
    volumeNamespace: str | None = None
    fsType: str | None = None
    readOnly: bool | None = None
    secretRef: LocalObjectReferenceAtomic | None = None


class VsphereVirtualDiskVolumeSource(K8sModel):
    volumePath: str | None = None
    fsType: str | None = None
    storagePolicyName: str | None = None
    storagePolicyID: str | None = None
