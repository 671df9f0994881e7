"""discovery.k8s.io/v1 kind: EndpointSlice.

Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic, ListSet
from procorch.api.types.base import Int32, K8sModel, K8sObject, ObjectReferenceAtomic, StringMap


class EndpointConditions(K8sModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class ForZone(K8sModel):
    name: str | None = None


class EndpointHints(K8sModel):
    forZones: list[ForZone] | None = None  # +listType=atomic


class Endpoint(K8sModel):
    # +listType=set without a patch strategy: strategic merge replaces the list.
    addresses: Annotated[list[str] | None, ListSet(merge=False)] = None
    conditions: EndpointConditions | None = None
    hostname: str | None = None
    targetRef: ObjectReferenceAtomic | None = None
    deprecatedTopology: StringMap | None = None
    nodeName: str | None = None
    zone: str | None = None
    hints: EndpointHints | None = None


class EndpointPort(K8sModel):  # +structType=atomic
    name: str | None = None
    protocol: str | None = None
    port: Int32 | None = None
    appProtocol: str | None = None


class EndpointSlice(K8sObject):
    addressType: str | None = None
    endpoints: list[Endpoint] | None = None  # +listType=atomic
    ports: list[Annotated[EndpointPort, Atomic()]] | None = None  # +listType=atomic
