"""coordination.k8s.io/v1 kind: Lease (node heartbeats, leader election).

Pure data.
"""

from __future__ import annotations

from procorch.api.types.base import Int32, K8sModel, K8sObject, MicroTime


class LeaseSpec(K8sModel):
    holderIdentity: str | None = None
    leaseDurationSeconds: Int32 | None = None
    acquireTime: MicroTime | None = None
    renewTime: MicroTime | None = None
    leaseTransitions: Int32 | None = None
    strategy: str | None = None
    preferredHolder: str | None = None


class Lease(K8sObject):
    spec: LeaseSpec | None = None
