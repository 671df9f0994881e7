"""core/v1 containers: Container, EphemeralContainer and everything nested in them.

Ports, env and env sources, resources (with dynamic-resource claims), volume mounts and
devices, probes (exec, httpGet, tcpSocket, grpc), lifecycle hooks (exec, httpGet, tcpSocket,
sleep) and the container security context. Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic, ListMap
from procorch.api.types.base import Int32, Int64, IntOrString, K8sModel, ResourceList
from procorch.api.types.core_volumes import ObjectFieldSelectorAtomic, ResourceFieldSelectorAtomic


class ContainerPort(K8sModel):
    name: str | None = None
    hostPort: Int32 | None = None
    containerPort: Int32 | None = None
    protocol: str | None = None
    hostIP: str | None = None


# --- environment ----------------------------------------------------------------------------


class ConfigMapKeySelector(K8sModel):  # +structType=atomic
    name: str | None = None
    key: str | None = None
    optional: bool | None = None


class SecretKeySelector(K8sModel):  # +structType=atomic
    name: str | None = None
    key: str | None = None
    optional: bool | None = None


class EnvVarSource(K8sModel):
    fieldRef: ObjectFieldSelectorAtomic | None = None
    resourceFieldRef: ResourceFieldSelectorAtomic | None = None
    configMapKeyRef: Annotated[ConfigMapKeySelector, Atomic()] | None = None
    secretKeyRef: Annotated[SecretKeySelector, Atomic()] | None = None


class EnvVar(K8sModel):
    name: str | None = None
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class ConfigMapEnvSource(K8sModel):
    name: str | None = None
    optional: bool | None = None


class SecretEnvSource(K8sModel):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(K8sModel):
    prefix: str | None = None
    configMapRef: ConfigMapEnvSource | None = None
    secretRef: SecretEnvSource | None = None


# --- resources ------------------------------------------------------------------------------


class ResourceClaim(K8sModel):
    name: str | None = None
    request: str | None = None


class ResourceRequirements(K8sModel):
    limits: ResourceList | None = None
    requests: ResourceList | None = None
    claims: Annotated[list[ResourceClaim] | None, ListMap("name")] = None


class ContainerResizePolicy(K8sModel):
    resourceName: str | None = None
    restartPolicy: str | None = None


# --- volumes as the container sees them -----------------------------------------------------


class VolumeMount(K8sModel):
    name: str | None = None
    readOnly: bool | None = None
    recursiveReadOnly: str | None = None
    mountPath: str | None = None
    subPath: str | None = None
    mountPropagation: str | None = None
    subPathExpr: str | None = None


class VolumeDevice(K8sModel):
    name: str | None = None
    devicePath: str | None = None


# --- probes and lifecycle hooks -------------------------------------------------------------


class ExecAction(K8sModel):
    command: list[str] | None = None  # +listType=atomic


class HTTPHeader(K8sModel):
    name: str | None = None
    value: str | None = None


class HTTPGetAction(K8sModel):
    path: str | None = None
    port: IntOrString | None = None
    host: str | None = None
    scheme: str | None = None
    httpHeaders: list[HTTPHeader] | None = None  # +listType=atomic


class TCPSocketAction(K8sModel):
    port: IntOrString | None = None
    host: str | None = None


class GRPCAction(K8sModel):
    port: Int32 | None = None
    service: str | None = None


class SleepAction(K8sModel):
    seconds: Int64 | None = None


class Probe(K8sModel):
    """A probe: one handler (Go inlines ProbeHandler here) and its timing."""

    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initialDelaySeconds: Int32 | None = None
    timeoutSeconds: Int32 | None = None
    periodSeconds: Int32 | None = None
    successThreshold: Int32 | None = None
    failureThreshold: Int32 | None = None
    terminationGracePeriodSeconds: Int64 | None = None


class LifecycleHandler(K8sModel):
    exec: ExecAction | None = None
    httpGet: HTTPGetAction | None = None
    tcpSocket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(K8sModel):
    postStart: LifecycleHandler | None = None
    preStop: LifecycleHandler | None = None


# --- security -------------------------------------------------------------------------------


class Capabilities(K8sModel):
    add: list[str] | None = None  # +listType=atomic
    drop: list[str] | None = None  # +listType=atomic


class SELinuxOptions(K8sModel):
    user: str | None = None
    role: str | None = None
    type: str | None = None
    level: str | None = None


class WindowsSecurityContextOptions(K8sModel):
    gmsaCredentialSpecName: str | None = None
    gmsaCredentialSpec: str | None = None
    runAsUserName: str | None = None
    hostProcess: bool | None = None


class SeccompProfile(K8sModel):
    type: str | None = None
    localhostProfile: str | None = None


class AppArmorProfile(K8sModel):
    type: str | None = None
    localhostProfile: str | None = None


class SecurityContext(K8sModel):
    capabilities: Capabilities | None = None
    privileged: bool | None = None
    seLinuxOptions: SELinuxOptions | None = None
    windowsOptions: WindowsSecurityContextOptions | None = None
    runAsUser: Int64 | None = None
    runAsGroup: Int64 | None = None
    runAsNonRoot: bool | None = None
    readOnlyRootFilesystem: bool | None = None
    allowPrivilegeEscalation: bool | None = None
    procMount: str | None = None
    seccompProfile: SeccompProfile | None = None
    appArmorProfile: AppArmorProfile | None = None


# --- the container --------------------------------------------------------------------------


class Container(K8sModel):
    name: str | None = None
    image: str | None = None
    command: list[str] | None = None  # +listType=atomic
    args: list[str] | None = None  # +listType=atomic
    workingDir: str | None = None
    ports: Annotated[
        list[ContainerPort] | None,
        ListMap("containerPort", "protocol", merge_key="containerPort"),
    ] = None
    envFrom: list[EnvFromSource] | None = None  # +listType=atomic
    env: Annotated[list[EnvVar] | None, ListMap("name")] = None
    resources: ResourceRequirements | None = None
    resizePolicy: list[ContainerResizePolicy] | None = None  # +listType=atomic
    restartPolicy: str | None = None
    volumeMounts: Annotated[list[VolumeMount] | None, ListMap("mountPath")] = None
    volumeDevices: Annotated[list[VolumeDevice] | None, ListMap("devicePath")] = None
    livenessProbe: Probe | None = None
    readinessProbe: Probe | None = None
    startupProbe: Probe | None = None
    lifecycle: Lifecycle | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None
    imagePullPolicy: str | None = None
    securityContext: SecurityContext | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    tty: bool | None = None


class EphemeralContainer(Container):
    """A debugging container added through the ``ephemeralcontainers`` subresource.

    It has every field of a container (Go's EphemeralContainerCommon) plus the container
    whose namespaces it joins.
    """

    targetContainerName: str | None = None
