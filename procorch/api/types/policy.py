"""policy/v1 kinds: PodDisruptionBudget, and Eviction, the body POSTed to a pod's ``eviction``
subresource.

Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import ListMap
from procorch.api.types.base import (
    Condition,
    Int32,
    Int64,
    IntOrString,
    K8sModel,
    K8sObject,
    LabelSelectorAtomic,
    Time,
)
from procorch.api.types.meta import DeleteOptions


class Eviction(K8sObject):
    deleteOptions: DeleteOptions | None = None


class PodDisruptionBudgetSpec(K8sModel):
    minAvailable: IntOrString | None = None
    selector: LabelSelectorAtomic | None = None  # patchStrategy: replace
    maxUnavailable: IntOrString | None = None
    unhealthyPodEvictionPolicy: str | None = None


class PodDisruptionBudgetStatus(K8sModel):
    observedGeneration: Int64 | None = None
    disruptedPods: dict[str, Time] | None = None
    disruptionsAllowed: Int32 | None = None
    currentHealthy: Int32 | None = None
    desiredHealthy: Int32 | None = None
    expectedPods: Int32 | None = None
    conditions: Annotated[list[Condition] | None, ListMap("type")] = None


class PodDisruptionBudget(K8sObject):
    spec: PodDisruptionBudgetSpec | None = None
    status: PodDisruptionBudgetStatus | None = None
