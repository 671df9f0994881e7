"""batch/v1 kinds: Job and CronJob, with pod-failure and success policies and status.

Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import ListSet, MergeByKey
from procorch.api.types.base import (
    Int32,
    Int64,
    K8sModel,
    K8sObject,
    LabelSelectorAtomic,
    ObjectMeta,
    ObjectReferenceAtomic,
    Time,
)
from procorch.api.types.core_pod import PodTemplateSpec

# --- Job ------------------------------------------------------------------------------------


class PodFailurePolicyOnExitCodesRequirement(K8sModel):
    containerName: str | None = None
    operator: str | None = None
    # +listType=set without a patch strategy: server-side apply unions, strategic merge replaces.
    values: Annotated[list[Int32] | None, ListSet(merge=False)] = None


class PodFailurePolicyOnPodConditionsPattern(K8sModel):
    type: str | None = None
    status: str | None = None


class PodFailurePolicyRule(K8sModel):
    action: str | None = None
    onExitCodes: PodFailurePolicyOnExitCodesRequirement | None = None
    onPodConditions: list[PodFailurePolicyOnPodConditionsPattern] | None = None  # atomic


class PodFailurePolicy(K8sModel):
    rules: list[PodFailurePolicyRule] | None = None  # +listType=atomic


class SuccessPolicyRule(K8sModel):
    succeededIndexes: str | None = None
    succeededCount: Int32 | None = None


class SuccessPolicy(K8sModel):
    rules: list[SuccessPolicyRule] | None = None  # +listType=atomic


class JobSpec(K8sModel):
    parallelism: Int32 | None = None
    completions: Int32 | None = None
    activeDeadlineSeconds: Int64 | None = None
    podFailurePolicy: PodFailurePolicy | None = None
    successPolicy: SuccessPolicy | None = None
    backoffLimit: Int32 | None = None
    backoffLimitPerIndex: Int32 | None = None
    maxFailedIndexes: Int32 | None = None
    selector: LabelSelectorAtomic | None = None
    manualSelector: bool | None = None
    template: PodTemplateSpec | None = None
    ttlSecondsAfterFinished: Int32 | None = None
    completionMode: str | None = None
    suspend: bool | None = None
    podReplacementPolicy: str | None = None
    managedBy: str | None = None


class JobCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastProbeTime: Time | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class UncountedTerminatedPods(K8sModel):
    succeeded: Annotated[list[str] | None, ListSet(merge=False)] = None
    failed: Annotated[list[str] | None, ListSet(merge=False)] = None


class JobStatus(K8sModel):
    # Strategic merge merges conditions by type, yet server-side apply treats them as atomic.
    conditions: Annotated[list[JobCondition] | None, MergeByKey("type")] = None
    startTime: Time | None = None
    completionTime: Time | None = None
    active: Int32 | None = None
    succeeded: Int32 | None = None
    failed: Int32 | None = None
    terminating: Int32 | None = None
    completedIndexes: str | None = None
    failedIndexes: str | None = None
    uncountedTerminatedPods: UncountedTerminatedPods | None = None
    ready: Int32 | None = None


class Job(K8sObject):
    spec: JobSpec | None = None
    status: JobStatus | None = None


# --- CronJob --------------------------------------------------------------------------------


class JobTemplateSpec(K8sModel):
    metadata: ObjectMeta | None = None
    spec: JobSpec | None = None


class CronJobSpec(K8sModel):
    schedule: str | None = None
    timeZone: str | None = None
    startingDeadlineSeconds: Int64 | None = None
    concurrencyPolicy: str | None = None
    suspend: bool | None = None
    jobTemplate: JobTemplateSpec | None = None
    successfulJobsHistoryLimit: Int32 | None = None
    failedJobsHistoryLimit: Int32 | None = None


class CronJobStatus(K8sModel):
    active: list[ObjectReferenceAtomic] | None = None  # +listType=atomic
    lastScheduleTime: Time | None = None
    lastSuccessfulTime: Time | None = None


class CronJob(K8sObject):
    spec: CronJobSpec | None = None
    status: CronJobStatus | None = None
