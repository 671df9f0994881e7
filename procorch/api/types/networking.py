"""networking.k8s.io/v1 kinds: Ingress and IngressClass.

Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic
from procorch.api.types.base import Int32, K8sModel, K8sObject, TypedLocalObjectReferenceAtomic

# --- Ingress --------------------------------------------------------------------------------


class ServiceBackendPort(K8sModel):  # +structType=atomic
    name: str | None = None
    number: Int32 | None = None


class IngressServiceBackend(K8sModel):
    name: str | None = None
    port: Annotated[ServiceBackendPort, Atomic()] | None = None


class IngressBackend(K8sModel):
    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReferenceAtomic | None = None


class HTTPIngressPath(K8sModel):
    path: str | None = None
    pathType: str | None = None
    backend: IngressBackend | None = None


class HTTPIngressRuleValue(K8sModel):
    paths: list[HTTPIngressPath] | None = None  # +listType=atomic


class IngressRule(K8sModel):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None  # Go inlines IngressRuleValue here


class IngressTLS(K8sModel):
    hosts: list[str] | None = None  # +listType=atomic
    secretName: str | None = None


class IngressSpec(K8sModel):
    ingressClassName: str | None = None
    defaultBackend: IngressBackend | None = None
    tls: list[IngressTLS] | None = None  # +listType=atomic
    rules: list[IngressRule] | None = None  # +listType=atomic


class IngressPortStatus(K8sModel):
    port: Int32 | None = None
    protocol: str | None = None
    error: str | None = None


class IngressLoadBalancerIngress(K8sModel):
    ip: str | None = None
    hostname: str | None = None
    ports: list[IngressPortStatus] | None = None  # +listType=atomic


class IngressLoadBalancerStatus(K8sModel):
    ingress: list[IngressLoadBalancerIngress] | None = None  # +listType=atomic


class IngressStatus(K8sModel):
    loadBalancer: IngressLoadBalancerStatus | None = None


class Ingress(K8sObject):
    spec: IngressSpec | None = None
    status: IngressStatus | None = None


# --- IngressClass ---------------------------------------------------------------------------


class IngressClassParametersReference(K8sModel):
    apiGroup: str | None = None
    kind: str | None = None
    name: str | None = None
    scope: str | None = None
    namespace: str | None = None


class IngressClassSpec(K8sModel):
    controller: str | None = None
    parameters: IngressClassParametersReference | None = None


class IngressClass(K8sObject):
    spec: IngressClassSpec | None = None
