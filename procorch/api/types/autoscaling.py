"""autoscaling kinds: HorizontalPodAutoscaler (autoscaling/v2) and Scale (autoscaling/v1).

Scale is what the ``scale`` subresource of Deployments and ReplicaSets reads and writes.
Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import ListMap
from procorch.api.types.base import (
    Int32,
    Int64,
    K8sModel,
    K8sObject,
    LabelSelectorAtomic,
    Quantity,
    Time,
)

# --- Scale (autoscaling/v1) -----------------------------------------------------------------


class ScaleSpec(K8sModel):
    replicas: Int32 | None = None


class ScaleStatus(K8sModel):
    replicas: Int32 | None = None
    selector: str | None = None  # the label selector in its string form


class Scale(K8sObject):
    spec: ScaleSpec | None = None
    status: ScaleStatus | None = None


# --- HorizontalPodAutoscaler (autoscaling/v2): metrics ---------------------------------------


class CrossVersionObjectReference(K8sModel):
    kind: str | None = None
    name: str | None = None
    apiVersion: str | None = None


class MetricIdentifier(K8sModel):
    name: str | None = None
    selector: LabelSelectorAtomic | None = None


class MetricTarget(K8sModel):
    type: str | None = None
    value: Quantity | None = None
    averageValue: Quantity | None = None
    averageUtilization: Int32 | None = None


class MetricValueStatus(K8sModel):
    value: Quantity | None = None
    averageValue: Quantity | None = None
    averageUtilization: Int32 | None = None


class ObjectMetricSource(K8sModel):
    describedObject: CrossVersionObjectReference | None = None
    target: MetricTarget | None = None
    metric: MetricIdentifier | None = None


class PodsMetricSource(K8sModel):
    metric: MetricIdentifier | None = None
    target: MetricTarget | None = None


class ResourceMetricSource(K8sModel):
    name: str | None = None
    target: MetricTarget | None = None


class ContainerResourceMetricSource(K8sModel):
    name: str | None = None
    target: MetricTarget | None = None
    container: str | None = None


class ExternalMetricSource(K8sModel):
    metric: MetricIdentifier | None = None
    target: MetricTarget | None = None


class MetricSpec(K8sModel):
    type: str | None = None
    object: ObjectMetricSource | None = None
    pods: PodsMetricSource | None = None
    resource: ResourceMetricSource | None = None
    containerResource: ContainerResourceMetricSource | None = None
    external: ExternalMetricSource | None = None


class ObjectMetricStatus(K8sModel):
    metric: MetricIdentifier | None = None
    current: MetricValueStatus | None = None
    describedObject: CrossVersionObjectReference | None = None


class PodsMetricStatus(K8sModel):
    metric: MetricIdentifier | None = None
    current: MetricValueStatus | None = None


class ResourceMetricStatus(K8sModel):
    name: str | None = None
    current: MetricValueStatus | None = None


class ContainerResourceMetricStatus(K8sModel):
    name: str | None = None
    current: MetricValueStatus | None = None
    container: str | None = None


class ExternalMetricStatus(K8sModel):
    metric: MetricIdentifier | None = None
    current: MetricValueStatus | None = None


class MetricStatus(K8sModel):
    type: str | None = None
    object: ObjectMetricStatus | None = None
    pods: PodsMetricStatus | None = None
    resource: ResourceMetricStatus | None = None
    containerResource: ContainerResourceMetricStatus | None = None
    external: ExternalMetricStatus | None = None


# --- HorizontalPodAutoscaler: spec, behavior, status ----------------------------------------


class HPAScalingPolicy(K8sModel):
    type: str | None = None
    value: Int32 | None = None
    periodSeconds: Int32 | None = None


class HPAScalingRules(K8sModel):
    stabilizationWindowSeconds: Int32 | None = None
    selectPolicy: str | None = None
    policies: list[HPAScalingPolicy] | None = None  # +listType=atomic


class HorizontalPodAutoscalerBehavior(K8sModel):
    scaleUp: HPAScalingRules | None = None
    scaleDown: HPAScalingRules | None = None


class HorizontalPodAutoscalerSpec(K8sModel):
    scaleTargetRef: CrossVersionObjectReference | None = None
    minReplicas: Int32 | None = None
    maxReplicas: Int32 | None = None
    metrics: list[MetricSpec] | None = None  # +listType=atomic
    behavior: HorizontalPodAutoscalerBehavior | None = None


class HorizontalPodAutoscalerCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class HorizontalPodAutoscalerStatus(K8sModel):
    observedGeneration: Int64 | None = None
    lastScaleTime: Time | None = None
    currentReplicas: Int32 | None = None
    desiredReplicas: Int32 | None = None
    currentMetrics: list[MetricStatus] | None = None  # +listType=atomic
    conditions: Annotated[list[HorizontalPodAutoscalerCondition] | None, ListMap("type")] = None


class HorizontalPodAutoscaler(K8sObject):
    spec: HorizontalPodAutoscalerSpec | None = None
    status: HorizontalPodAutoscalerStatus | None = None
