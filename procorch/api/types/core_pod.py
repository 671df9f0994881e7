"""core/v1 pods: Pod, PodSpec, PodStatus, PodTemplateSpec and the scheduling types.

Scheduling (affinity, tolerations, topology spread, scheduling gates), the pod security
context, DNS settings, and the status the node agent writes (conditions, IPs, container
states). Containers live in :mod:`procorch.api.types.core_container`, volumes in
:mod:`procorch.api.types.core_volumes`. Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic, ListMap, MergeByKey
from procorch.api.types.base import (
    AtomicStringMap,
    Int32,
    Int64,
    K8sModel,
    K8sObject,
    LabelSelectorAtomic,
    LocalObjectReferenceAtomic,
    ObjectMeta,
    ResourceList,
    Time,
)
from procorch.api.types.core_container import (
    AppArmorProfile,
    Container,
    EphemeralContainer,
    ResourceRequirements,
    SeccompProfile,
    SELinuxOptions,
    WindowsSecurityContextOptions,
)
from procorch.api.types.core_volumes import Volume

# --- node affinity --------------------------------------------------------------------------


class NodeSelectorRequirement(K8sModel):
    key: str | None = None
    operator: str | None = None
    values: list[str] | None = None  # +listType=atomic


class NodeSelectorTerm(K8sModel):  # +structType=atomic
    matchExpressions: list[NodeSelectorRequirement] | None = None  # +listType=atomic
    matchFields: list[NodeSelectorRequirement] | None = None  # +listType=atomic


NodeSelectorTermAtomic = Annotated[NodeSelectorTerm, Atomic()]


class NodeSelector(K8sModel):  # +structType=atomic
    nodeSelectorTerms: list[NodeSelectorTermAtomic] | None = None  # +listType=atomic


NodeSelectorAtomic = Annotated[NodeSelector, Atomic()]


class PreferredSchedulingTerm(K8sModel):
    weight: Int32 | None = None
    preference: NodeSelectorTermAtomic | None = None


class NodeAffinity(K8sModel):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelectorAtomic | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] | None = None


# --- pod affinity ---------------------------------------------------------------------------


class PodAffinityTerm(K8sModel):
    labelSelector: LabelSelectorAtomic | None = None
    namespaces: list[str] | None = None  # +listType=atomic
    topologyKey: str | None = None
    namespaceSelector: LabelSelectorAtomic | None = None
    matchLabelKeys: list[str] | None = None  # +listType=atomic
    mismatchLabelKeys: list[str] | None = None  # +listType=atomic


class WeightedPodAffinityTerm(K8sModel):
    weight: Int32 | None = None
    podAffinityTerm: PodAffinityTerm | None = None


class PodAffinity(K8sModel):
    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTerm] | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[WeightedPodAffinityTerm] | None = None


class PodAntiAffinity(K8sModel):
    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTerm] | None = None
    preferredDuringSchedulingIgnoredDuringExecution: list[WeightedPodAffinityTerm] | None = None


class Affinity(K8sModel):
    nodeAffinity: NodeAffinity | None = None
    podAffinity: PodAffinity | None = None
    podAntiAffinity: PodAntiAffinity | None = None


# --- other scheduling inputs ----------------------------------------------------------------


class Toleration(K8sModel):
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    tolerationSeconds: Int64 | None = None


class TopologySpreadConstraint(K8sModel):
    maxSkew: Int32 | None = None
    topologyKey: str | None = None
    whenUnsatisfiable: str | None = None
    labelSelector: LabelSelectorAtomic | None = None
    minDomains: Int32 | None = None
    nodeAffinityPolicy: str | None = None
    nodeTaintsPolicy: str | None = None
    matchLabelKeys: list[str] | None = None  # +listType=atomic


class PodSchedulingGate(K8sModel):
    name: str | None = None


class PodReadinessGate(K8sModel):
    conditionType: str | None = None


class PodOS(K8sModel):
    name: str | None = None


class PodResourceClaim(K8sModel):
    name: str | None = None
    resourceClaimName: str | None = None
    resourceClaimTemplateName: str | None = None


# --- host, DNS and security -----------------------------------------------------------------


class HostAlias(K8sModel):
    ip: str | None = None
    hostnames: list[str] | None = None  # +listType=atomic


class PodDNSConfigOption(K8sModel):
    name: str | None = None
    value: str | None = None


class PodDNSConfig(K8sModel):
    nameservers: list[str] | None = None  # +listType=atomic
    searches: list[str] | None = None  # +listType=atomic
    options: list[PodDNSConfigOption] | None = None  # +listType=atomic


class Sysctl(K8sModel):
    name: str | None = None
    value: str | None = None


class PodSecurityContext(K8sModel):
    seLinuxOptions: SELinuxOptions | None = None
    windowsOptions: WindowsSecurityContextOptions | None = None
    runAsUser: Int64 | None = None
    runAsGroup: Int64 | None = None
    runAsNonRoot: bool | None = None
    supplementalGroups: list[Int64] | None = None  # +listType=atomic
    supplementalGroupsPolicy: str | None = None
    fsGroup: Int64 | None = None
    sysctls: list[Sysctl] | None = None  # +listType=atomic
    fsGroupChangePolicy: str | None = None
    seccompProfile: SeccompProfile | None = None
    appArmorProfile: AppArmorProfile | None = None
    seLinuxChangePolicy: str | None = None


# --- the spec -------------------------------------------------------------------------------


class PodSpec(K8sModel):
    volumes: Annotated[list[Volume] | None, ListMap("name", retain_keys=True)] = None
    initContainers: Annotated[list[Container] | None, ListMap("name")] = None
    containers: Annotated[list[Container] | None, ListMap("name")] = None
    ephemeralContainers: Annotated[list[EphemeralContainer] | None, ListMap("name")] = None
    restartPolicy: str | None = None
    terminationGracePeriodSeconds: Int64 | None = None
    activeDeadlineSeconds: Int64 | None = None
    dnsPolicy: str | None = None
    nodeSelector: AtomicStringMap | None = None
    serviceAccountName: str | None = None
    serviceAccount: str | None = None  # deprecated alias of serviceAccountName
    automountServiceAccountToken: bool | None = None
    nodeName: str | None = None
    hostNetwork: bool | None = None
    hostPID: bool | None = None
    hostIPC: bool | None = None
    shareProcessNamespace: bool | None = None
    securityContext: PodSecurityContext | None = None
    imagePullSecrets: Annotated[list[LocalObjectReferenceAtomic] | None, ListMap("name")] = None
    hostname: str | None = None
    subdomain: str | None = None
    affinity: Affinity | None = None
    schedulerName: str | None = None
    tolerations: list[Toleration] | None = None  # +listType=atomic
    hostAliases: Annotated[list[HostAlias] | None, ListMap("ip")] = None
    priorityClassName: str | None = None
    priority: Int32 | None = None
    dnsConfig: PodDNSConfig | None = None
    readinessGates: list[PodReadinessGate] | None = None  # +listType=atomic
    runtimeClassName: str | None = None
    enableServiceLinks: bool | None = None
    preemptionPolicy: str | None = None
    overhead: ResourceList | None = None
    topologySpreadConstraints: Annotated[
        list[TopologySpreadConstraint] | None,
        ListMap("topologyKey", "whenUnsatisfiable", merge_key="topologyKey"),
    ] = None
    setHostnameAsFQDN: bool | None = None
    os: PodOS | None = None
    hostUsers: bool | None = None
    schedulingGates: Annotated[list[PodSchedulingGate] | None, ListMap("name")] = None
    resourceClaims: Annotated[list[PodResourceClaim] | None, ListMap("name", retain_keys=True)] = (
        None
    )
    resources: ResourceRequirements | None = None


class PodTemplateSpec(K8sModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec | None = None


# --- status ---------------------------------------------------------------------------------


class PodCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastProbeTime: Time | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class HostIP(K8sModel):
    ip: str | None = None


class PodIP(K8sModel):
    ip: str | None = None


class ContainerStateWaiting(K8sModel):
    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(K8sModel):
    startedAt: Time | None = None


class ContainerStateTerminated(K8sModel):
    exitCode: Int32 | None = None
    signal: Int32 | None = None
    reason: str | None = None
    message: str | None = None
    startedAt: Time | None = None
    finishedAt: Time | None = None
    containerID: str | None = None


class ContainerState(K8sModel):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class VolumeMountStatus(K8sModel):
    name: str | None = None
    mountPath: str | None = None
    readOnly: bool | None = None
    recursiveReadOnly: str | None = None


class LinuxContainerUser(K8sModel):
    uid: Int64 | None = None
    gid: Int64 | None = None
    supplementalGroups: list[Int64] | None = None  # +listType=atomic


class ContainerUser(K8sModel):
    linux: LinuxContainerUser | None = None


class ResourceHealth(K8sModel):
    resourceID: str | None = None
    health: str | None = None


class ResourceStatus(K8sModel):
    name: str | None = None
    resources: Annotated[list[ResourceHealth] | None, ListMap("resourceID")] = None


class ContainerStatus(K8sModel):
    name: str | None = None
    state: ContainerState | None = None
    lastState: ContainerState | None = None
    ready: bool | None = None
    restartCount: Int32 | None = None
    image: str | None = None
    imageID: str | None = None
    containerID: str | None = None
    started: bool | None = None
    allocatedResources: ResourceList | None = None
    resources: ResourceRequirements | None = None
    volumeMounts: Annotated[list[VolumeMountStatus] | None, ListMap("mountPath")] = None
    user: ContainerUser | None = None
    allocatedResourcesStatus: Annotated[list[ResourceStatus] | None, ListMap("name")] = None


class PodResourceClaimStatus(K8sModel):
    name: str | None = None
    resourceClaimName: str | None = None


class PodStatus(K8sModel):
    phase: str | None = None
    conditions: Annotated[list[PodCondition] | None, ListMap("type")] = None
    message: str | None = None
    reason: str | None = None
    nominatedNodeName: str | None = None
    hostIP: str | None = None
    # Strategic merge merges hostIPs by ip, yet server-side apply treats the list as atomic.
    hostIPs: Annotated[list[HostIP] | None, MergeByKey("ip")] = None
    podIP: str | None = None
    podIPs: Annotated[list[PodIP] | None, ListMap("ip")] = None
    startTime: Time | None = None
    initContainerStatuses: list[ContainerStatus] | None = None  # +listType=atomic
    containerStatuses: list[ContainerStatus] | None = None  # +listType=atomic
    qosClass: str | None = None
    ephemeralContainerStatuses: list[ContainerStatus] | None = None  # +listType=atomic
    resize: str | None = None
    resourceClaimStatuses: Annotated[
        list[PodResourceClaimStatus] | None, ListMap("name", retain_keys=True)
    ] = None


class Pod(K8sObject):
    spec: PodSpec | None = None
    status: PodStatus | None = None
