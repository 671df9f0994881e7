"""The HorizontalPodAutoscaler's replica calculator, after Kubernetes' ``replica_calculator.go``.

From PodMetrics items (as ``metrics.k8s.io`` returns them) and the target's pods it computes
the replica count a resource metric asks for: ``ceil(currentUtilization / target *
readyPods)``, nothing when the ratio is within the tolerance (10 %), and the conservative
corrections Kubernetes makes for pods without metrics (assumed at the target, or at 0 when
scaling up) and for unready pods (assumed at 0 when scaling up). Utilization is relative to
the containers' requests; a pod without a request makes the metric fail with Kubernetes'
message (``missing request for cpu in container main of Pod web-1``).

Values are in milli-units as Kubernetes' ``MilliValue`` (millicores; milli-bytes for memory).
Pure functions: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from procorch.api.meta import parse_time
from procorch.api.quantity import parse_quantity

Obj = dict[str, Any]


class MetricError(Exception):
    """The metric could not be computed; the message is Kubernetes' wording."""


@dataclass(frozen=True)
class PodMetric:
    value: int  # milli-units
    timestamp: datetime | None
    window: float  # seconds


@dataclass(frozen=True)
class Estimate:
    replicas: int
    utilization: int | None  # percent of requests, for Utilization targets
    raw: int  # average per pod, milli-units
    timestamp: datetime | None


def milli_value(quantity: Any) -> int:
    return math.ceil(parse_quantity(quantity) * 1000)


def _duration(text: Any) -> float:
    value = str(text or "0s").strip()
    try:
        if value.endswith("ms"):
            return float(value[:-2]) / 1000
        if value.endswith("s"):
            return float(value[:-1])
        if value.endswith("m"):
            return float(value[:-1]) * 60
        return float(value)
    except ValueError:
        return 0.0


def pod_metrics(items: list[Obj], resource: str, container: str = "") -> dict[str, PodMetric]:
    """Pod name -> summed usage of ``resource`` (of one container when ``container`` is set).
    A pod missing the resource for some container has no metric (``getPodMetrics``)."""
    out: dict[str, PodMetric] = {}
    for item in items:
        containers = item.get("containers") or []
        total = 0
        missing = not containers
        found = False
        for c in containers:
            if container and c.get("name") != container:
                continue
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                missing = True
                break
            total += milli_value(usage)
            found = True
        if container and not found:
            missing = True
        if missing:
            continue
        name = str((item.get("metadata") or {}).get("name") or "")
        out[name] = PodMetric(
            total, parse_time(item.get("timestamp")), _duration(item.get("window"))
        )
    return out


def group_pods(
    pods: list[Obj],
    metrics: dict[str, PodMetric],
    resource: str,
    *,
    cpu_initialization_period: float,
    initial_readiness_delay: float,
    now: datetime,
) -> tuple[int, set[str], set[str], set[str]]:
    """(ready pod count, unready, missing metrics, ignored) as ``groupPods`` sorts them."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        name = str(meta.get("name") or "")
        if meta.get("deletionTimestamp") or status.get("phase") == "Failed":
            ignored.add(name)
            continue
        if status.get("phase") == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
            )
            started = parse_time(status.get("startTime"))
            if cond is None or started is None:
                is_unready = True
            else:
                changed = parse_time(cond.get("lastTransitionTime"))
                if started.timestamp() + cpu_initialization_period > now.timestamp():
                    # Still starting: ignore a sample taken before one full window of readiness.
                    is_unready = cond.get("status") == "False" or (
                        metric.timestamp is not None
                        and changed is not None
                        and metric.timestamp.timestamp() < changed.timestamp() + metric.window
                    )
                else:
                    # Ignore a pod that is unready and has never been ready.
                    is_unready = (
                        cond.get("status") == "False"
                        and changed is not None
                        and started.timestamp() + initial_readiness_delay > changed.timestamp()
                    )
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def _containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return list(spec.get("containers") or []) + sidecars


def pod_requests(pods: list[Obj], resource: str, container: str = "") -> dict[str, int]:
    """Pod name -> summed request (milli-units); MetricError when a container has none."""
    out: dict[str, int] = {}
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name") or "")
        total = 0
        for c in _containers(pod):
            if container and c.get("name") != container:
                continue
            request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if request is None:
                raise MetricError(
                    f"missing request for {resource} in container {c.get('name')} of Pod {name}"
                )
            total += milli_value(request)
        out[name] = total
    return out


def utilization_ratio(
    metrics: dict[str, PodMetric], requests: dict[str, int], target: int
) -> tuple[float, int, int]:
    """(usage / target ratio, utilization percent, average raw usage)."""
    used = requested = entries = 0
    for name, metric in metrics.items():
        if name not in requests:
            continue  # extraneous metrics: a missing request is reported elsewhere
        used += metric.value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = used * 100 // requested
    return utilization / target, utilization, used // entries


def _prepare(
    pods: list[Obj], metrics: dict[str, PodMetric], resource: str, settings: Any, now: datetime
) -> tuple[int, set[str], set[str]]:
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    ready, unready, missing, ignored = group_pods(
        pods,
        metrics,
        resource,
        cpu_initialization_period=settings.cpu_initialization_period,
        initial_readiness_delay=settings.initial_readiness_delay,
        now=now,
    )
    for name in ignored | unready:
        metrics.pop(name, None)
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return ready, unready, missing


def resource_replicas(
    *,
    current: int,
    target_utilization: int,
    resource: str,
    pods: list[Obj],
    metrics: dict[str, PodMetric],
    settings: Any,
    now: datetime,
    container: str = "",
) -> Estimate:
    """Replicas for a Utilization target (``GetResourceReplicas``)."""
    metrics = dict(metrics)
    timestamp = next(iter(metrics.values())).timestamp if metrics else None
    ready, unready, missing = _prepare(pods, metrics, resource, settings, now)
    requests = pod_requests(pods, resource, container)
    ratio, utilization, raw = utilization_ratio(metrics, requests, target_utilization)
    tolerance = settings.tolerance
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Estimate(current, utilization, raw, timestamp)
        return Estimate(math.ceil(ratio * ready), utilization, raw, timestamp)
    if missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for name in missing:
                metrics[name] = PodMetric(requests.get(name, 0) * fallback // 100, None, 0.0)
        elif ratio > 1.0:
            for name in missing:
                metrics[name] = PodMetric(0, None, 0.0)
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = PodMetric(0, None, 0.0)
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Estimate(current, utilization, raw, timestamp)
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Estimate(current, utilization, raw, timestamp)
    return Estimate(replicas, utilization, raw, timestamp)


def raw_resource_replicas(
    *,
    current: int,
    target_usage: int,
    resource: str,
    pods: list[Obj],
    metrics: dict[str, PodMetric],
    settings: Any,
    now: datetime,
) -> Estimate:
    """Replicas for an AverageValue target (``GetRawResourceReplicas``)."""
    metrics = dict(metrics)
    timestamp = next(iter(metrics.values())).timestamp if metrics else None
    ready, unready, missing = _prepare(pods, metrics, resource, settings, now)

    def ratio_of(m: dict[str, PodMetric]) -> tuple[float, int]:
        usage = sum(v.value for v in m.values()) // len(m)
        return usage / target_usage, usage

    ratio, usage = ratio_of(metrics)
    tolerance = settings.tolerance
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return Estimate(current, None, usage, timestamp)
        return Estimate(math.ceil(ratio * ready), None, usage, timestamp)
    if missing:
        for name in missing:
            metrics[name] = PodMetric(target_usage if ratio < 1.0 else 0, None, 0.0)
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = PodMetric(0, None, 0.0)
    new_ratio, _ = ratio_of(metrics)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Estimate(current, None, usage, timestamp)
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Estimate(current, None, usage, timestamp)
    return Estimate(replicas, None, usage, timestamp)
