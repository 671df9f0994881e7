"""meta/v1 option kinds that arrive as request bodies: DeleteOptions and its Preconditions.

kubectl and client libraries send a DeleteOptions body with DELETE (``propagationPolicy``,
``gracePeriodSeconds``, ``preconditions``); an Eviction embeds one. Kubernetes registers
DeleteOptions in every group version, so the body's ``apiVersion`` may be ``v1``,
``meta.k8s.io/v1`` or the resource's own group version. Pure data.
"""

from __future__ import annotations

from procorch.api.types.base import Int64, K8sModel


class Preconditions(K8sModel):
    uid: str | None = None
    resourceVersion: str | None = None


class DeleteOptions(K8sModel):
    apiVersion: str | None = None
    kind: str | None = None
    gracePeriodSeconds: Int64 | None = None
    preconditions: Preconditions | None = None
    orphanDependents: bool | None = None
    propagationPolicy: str | None = None
    dryRun: list[str] | None = None  # +listType=atomic
    ignoreStoreReadErrorWithClusterBreakingPotential: bool | None = None
