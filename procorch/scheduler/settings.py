"""The scheduler's tunable durations and limits, each defaulting to kube-scheduler's value
where Kubernetes has one.

Pure data: the :class:`SchedulerSettings` instance is read, never mutated, by the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerSettings:
    unschedulable_retry_interval: float = 10.0
    """Seconds an unschedulable pod waits before it is tried again even though nothing
    relevant changed. Changes that can help (a node added or updated, a pod deleted or
    finished, the pod itself updated) retry it sooner. kube-scheduler waits up to five
    minutes (``podMaxInUnschedulablePodsDuration``); a local cluster is small and a retry
    costs little, so procorch looks again sooner."""

    pod_initial_backoff: float = 1.0
    """Seconds a pod waits after its first failed attempt before an event may retry it
    (kube-scheduler's ``podInitialBackoffSeconds``). Doubles with each further failure."""

    pod_max_backoff: float = 10.0
    """The cap on that backoff (kube-scheduler's ``podMaxBackoffSeconds``)."""

    parallel_bindings: int = 16
    """Bindings in flight at once. Scheduling decisions are made one pod at a time; the
    API writes that follow them overlap, as kube-scheduler's binding cycles do."""

    def __post_init__(self) -> None:
        if self.unschedulable_retry_interval <= 0:
            raise ValueError("unschedulable_retry_interval must be positive")
        if self.pod_initial_backoff < 0 or self.pod_max_backoff < self.pod_initial_backoff:
            raise ValueError("need 0 <= pod_initial_backoff <= pod_max_backoff")
        if self.parallel_bindings < 1:
            raise ValueError("parallel_bindings must be at least 1")
