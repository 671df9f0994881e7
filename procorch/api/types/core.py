"""core/v1 kinds: Namespace, Node, ConfigMap, Secret, Service, Endpoints, Event,
ServiceAccount, PersistentVolumeClaim and Binding, with their spec and status types.

Pod and its parts live in :mod:`procorch.api.types.core_pod` (and ``core_container``,
``core_volumes``); the top-level pod names are re-exported here so that every core/v1 kind
can be imported from this module. Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic, ListMap, ListSet
from procorch.api.types.base import (
    AtomicStringMap,
    Bytes,
    Condition,
    Int32,
    Int64,
    IntOrString,
    K8sModel,
    K8sObject,
    LocalObjectReferenceAtomic,
    MicroTime,
    ObjectReferenceAtomic,
    ResourceList,
    StringMap,
    Time,
)
from procorch.api.types.core_container import Container
from procorch.api.types.core_pod import Pod, PodSpec, PodStatus, PodTemplateSpec
from procorch.api.types.core_volumes import PersistentVolumeClaimSpec

__all__ = [
    "AttachedVolume",
    "Binding",
    "ClientIPConfig",
    "ConfigMap",
    "ConfigMapNodeConfigSource",
    "Container",
    "ContainerImage",
    "DaemonEndpoint",
    "EndpointAddress",
    "EndpointPort",
    "EndpointSubset",
    "Endpoints",
    "Event",
    "EventSeries",
    "EventSource",
    "LoadBalancerIngress",
    "LoadBalancerStatus",
    "ModifyVolumeStatus",
    "Namespace",
    "NamespaceCondition",
    "NamespaceSpec",
    "NamespaceStatus",
    "Node",
    "NodeAddress",
    "NodeCondition",
    "NodeConfigSource",
    "NodeConfigStatus",
    "NodeDaemonEndpoints",
    "NodeFeatures",
    "NodeRuntimeHandler",
    "NodeRuntimeHandlerFeatures",
    "NodeSpec",
    "NodeStatus",
    "NodeSystemInfo",
    "PersistentVolumeClaim",
    "PersistentVolumeClaimCondition",
    "PersistentVolumeClaimStatus",
    "Pod",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "PortStatus",
    "Secret",
    "Service",
    "ServiceAccount",
    "ServicePort",
    "ServiceSpec",
    "ServiceStatus",
    "SessionAffinityConfig",
    "Taint",
]

# --- Namespace ------------------------------------------------------------------------------


class NamespaceSpec(K8sModel):
    finalizers: list[str] | None = None  # +listType=atomic


class NamespaceCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class NamespaceStatus(K8sModel):
    phase: str | None = None
    conditions: Annotated[list[NamespaceCondition] | None, ListMap("type")] = None


class Namespace(K8sObject):
    spec: NamespaceSpec | None = None
    status: NamespaceStatus | None = None


# --- Node -----------------------------------------------------------------------------------


class Taint(K8sModel):
    key: str | None = None
    value: str | None = None
    effect: str | None = None
    timeAdded: Time | None = None


class ConfigMapNodeConfigSource(K8sModel):
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    kubeletConfigKey: str | None = None


class NodeConfigSource(K8sModel):
    configMap: ConfigMapNodeConfigSource | None = None


class NodeSpec(K8sModel):
    podCIDR: str | None = None
    podCIDRs: Annotated[list[str] | None, ListSet()] = None
    providerID: str | None = None
    unschedulable: bool | None = None
    taints: list[Taint] | None = None  # +listType=atomic
    configSource: NodeConfigSource | None = None
    externalID: str | None = None


class NodeCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastHeartbeatTime: Time | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class NodeAddress(K8sModel):
    type: str | None = None
    address: str | None = None


class DaemonEndpoint(K8sModel):
    Port: Int32 | None = None  # capitalised in the JSON too


class NodeDaemonEndpoints(K8sModel):
    kubeletEndpoint: DaemonEndpoint | None = None


class NodeSystemInfo(K8sModel):
    machineID: str | None = None
    systemUUID: str | None = None
    bootID: str | None = None
    kernelVersion: str | None = None
    osImage: str | None = None
    containerRuntimeVersion: str | None = None
    kubeletVersion: str | None = None
    kubeProxyVersion: str | None = None
    operatingSystem: str | None = None
    architecture: str | None = None


class ContainerImage(K8sModel):
    names: list[str] | None = None  # +listType=atomic
    sizeBytes: Int64 | None = None


class AttachedVolume(K8sModel):
    name: str | None = None
    devicePath: str | None = None


class NodeConfigStatus(K8sModel):
    assigned: NodeConfigSource | None = None
    active: NodeConfigSource | None = None
    lastKnownGood: NodeConfigSource | None = None
    error: str | None = None


class NodeRuntimeHandlerFeatures(K8sModel):
    recursiveReadOnlyMounts: bool | None = None
    userNamespaces: bool | None = None


class NodeRuntimeHandler(K8sModel):
    name: str | None = None
    features: NodeRuntimeHandlerFeatures | None = None


class NodeFeatures(K8sModel):
    supplementalGroupsPolicy: bool | None = None


class NodeStatus(K8sModel):
    capacity: ResourceList | None = None
    allocatable: ResourceList | None = None
    phase: str | None = None
    conditions: Annotated[list[NodeCondition] | None, ListMap("type")] = None
    addresses: Annotated[list[NodeAddress] | None, ListMap("type")] = None
    daemonEndpoints: NodeDaemonEndpoints | None = None
    nodeInfo: NodeSystemInfo | None = None
    images: list[ContainerImage] | None = None  # +listType=atomic
    volumesInUse: list[str] | None = None  # +listType=atomic
    volumesAttached: list[AttachedVolume] | None = None  # +listType=atomic
    config: NodeConfigStatus | None = None
    runtimeHandlers: list[NodeRuntimeHandler] | None = None  # +listType=atomic
    features: NodeFeatures | None = None


class Node(K8sObject):
    spec: NodeSpec | None = None
    status: NodeStatus | None = None


# --- ConfigMap, Secret, ServiceAccount ------------------------------------------------------


class ConfigMap(K8sObject):
    immutable: bool | None = None
    data: StringMap | None = None
    binaryData: dict[str, Bytes] | None = None


class Secret(K8sObject):
    immutable: bool | None = None
    data: dict[str, Bytes] | None = None  # values are base64 text, as on the wire
    stringData: StringMap | None = None  # write-only: merged into data on write
    type: str | None = None


class ServiceAccount(K8sObject):
    secrets: Annotated[list[ObjectReferenceAtomic] | None, ListMap("name")] = None
    imagePullSecrets: list[LocalObjectReferenceAtomic] | None = None  # +listType=atomic
    automountServiceAccountToken: bool | None = None


# --- Service --------------------------------------------------------------------------------


class ServicePort(K8sModel):
    name: str | None = None
    protocol: str | None = None
    appProtocol: str | None = None
    port: Int32 | None = None
    targetPort: IntOrString | None = None
    nodePort: Int32 | None = None


class ClientIPConfig(K8sModel):
    timeoutSeconds: Int32 | None = None


class SessionAffinityConfig(K8sModel):
    clientIP: ClientIPConfig | None = None


class ServiceSpec(K8sModel):
    ports: Annotated[list[ServicePort] | None, ListMap("port", "protocol", merge_key="port")] = None
    selector: AtomicStringMap | None = None
    clusterIP: str | None = None
    clusterIPs: list[str] | None = None  # +listType=atomic
    type: str | None = None
    externalIPs: list[str] | None = None  # +listType=atomic
    sessionAffinity: str | None = None
    loadBalancerIP: str | None = None
    loadBalancerSourceRanges: list[str] | None = None  # +listType=atomic
    externalName: str | None = None
    externalTrafficPolicy: str | None = None
    healthCheckNodePort: Int32 | None = None
    publishNotReadyAddresses: bool | None = None
    sessionAffinityConfig: SessionAffinityConfig | None = None
    ipFamilies: list[str] | None = None  # +listType=atomic
    ipFamilyPolicy: str | None = None
    allocateLoadBalancerNodePorts: bool | None = None
    loadBalancerClass: str | None = None
    internalTrafficPolicy: str | None = None
    trafficDistribution: str | None = None


class PortStatus(K8sModel):
    port: Int32 | None = None
    protocol: str | None = None
    error: str | None = None


class LoadBalancerIngress(K8sModel):
    ip: str | None = None
    hostname: str | None = None
    ipMode: str | None = None
    ports: list[PortStatus] | None = None  # +listType=atomic


class LoadBalancerStatus(K8sModel):
    ingress: list[LoadBalancerIngress] | None = None  # +listType=atomic


class ServiceStatus(K8sModel):
    loadBalancer: LoadBalancerStatus | None = None
    conditions: Annotated[list[Condition] | None, ListMap("type")] = None


class Service(K8sObject):
    spec: ServiceSpec | None = None
    status: ServiceStatus | None = None


# --- Endpoints ------------------------------------------------------------------------------


class EndpointAddress(K8sModel):  # +structType=atomic
    ip: str | None = None
    hostname: str | None = None
    nodeName: str | None = None
    targetRef: ObjectReferenceAtomic | None = None


class EndpointPort(K8sModel):  # +structType=atomic
    name: str | None = None
    port: Int32 | None = None
    protocol: str | None = None
    appProtocol: str | None = None


class EndpointSubset(K8sModel):
    addresses: list[Annotated[EndpointAddress, Atomic()]] | None = None  # +listType=atomic
    notReadyAddresses: list[Annotated[EndpointAddress, Atomic()]] | None = None
    ports: list[Annotated[EndpointPort, Atomic()]] | None = None  # +listType=atomic


class Endpoints(K8sObject):
    subsets: list[EndpointSubset] | None = None  # +listType=atomic


# --- Event ----------------------------------------------------------------------------------


class EventSource(K8sModel):
    component: str | None = None
    host: str | None = None


class EventSeries(K8sModel):
    count: Int32 | None = None
    lastObservedTime: MicroTime | None = None


class Event(K8sObject):
    involvedObject: ObjectReferenceAtomic | None = None
    reason: str | None = None
    message: str | None = None
    source: EventSource | None = None
    firstTimestamp: Time | None = None
    lastTimestamp: Time | None = None
    count: Int32 | None = None
    type: str | None = None
    eventTime: MicroTime | None = None
    series: EventSeries | None = None
    action: str | None = None
    related: ObjectReferenceAtomic | None = None
    reportingComponent: str | None = None
    reportingInstance: str | None = None


# --- PersistentVolumeClaim ------------------------------------------------------------------


class PersistentVolumeClaimCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastProbeTime: Time | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class ModifyVolumeStatus(K8sModel):
    targetVolumeAttributesClassName: str | None = None
    status: str | None = None


class PersistentVolumeClaimStatus(K8sModel):
    phase: str | None = None
    accessModes: list[str] | None = None  # +listType=atomic
    capacity: ResourceList | None = None
    conditions: Annotated[list[PersistentVolumeClaimCondition] | None, ListMap("type")] = None
    allocatedResources: ResourceList | None = None
    allocatedResourceStatuses: StringMap | None = None
    currentVolumeAttributesClassName: str | None = None
    modifyVolumeStatus: ModifyVolumeStatus | None = None


class PersistentVolumeClaim(K8sObject):
    spec: PersistentVolumeClaimSpec | None = None
    status: PersistentVolumeClaimStatus | None = None


# --- Binding (the pods/binding subresource) -------------------------------------------------


class Binding(K8sObject):
    target: ObjectReferenceAtomic | None = None
