"""The HorizontalPodAutoscaler controller (autoscaling/v2), after Kubernetes' ``horizontal.go``.

Every ``sync_period`` (15 s, as Kubernetes) each HPA is reconciled: read the target's
``scale`` subresource (replicas and the pod selector), compute what each metric asks for
(:mod:`.workloads_hpa_calc`: CPU or memory utilization relative to the containers' requests, or
an average value; ``Resource`` and ``ContainerResource`` metrics, from the pod metrics the
node agents sample), take the largest, stabilize and cap it (:mod:`.workloads_hpa_scaling`),
then write the target's ``scale`` if it changed and always the HPA's status: current and
desired replicas, ``currentMetrics`` (what ``kubectl get hpa`` shows as TARGETS), the
AbleToScale, ScalingActive and ScalingLimited conditions, ``lastScaleTime``. Failures are
reported as Kubernetes reports them (condition ScalingActive False with reason
``FailedGetResourceMetric`` and a Warning event of the same reason).

Metrics come from an injected :data:`PodMetricsSource` (the launcher wires the API server's
``metrics.k8s.io`` provider), so this module never imports the API server.

Concurrency: ``workers`` reconciles at once, never two for one HPA; recommendation history is
kept per HPA in memory, as Kubernetes keeps it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from procorch.api import errors, resources
from procorch.api.meta import deep_copy, now, rfc3339
from procorch.api.quantity import format_quantity
from procorch.api.resources import must
from procorch.api.selectors import parse_label_selector
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.controllers import workloads_hpa_calc as calc
from procorch.controllers.workloads_hpa_scaling import Scaling
from procorch.reconcile.controller import Controller, key_of
from procorch.reconcile.factory import InformerFactory

HPAS = must("autoscaling/horizontalpodautoscalers")
PODS = must("core/pods")

Obj = dict[str, Any]
Key = tuple[str, str]
PodMetricsSource = Callable[[str, str], Awaitable[list[dict[str, Any]]]]
"""(namespace, label selector) -> PodMetrics items, as ``metrics.k8s.io`` returns them."""


@dataclass
class HPASettings:
    sync_period: float = 15.0
    """How often each HPA is reconciled (``--horizontal-pod-autoscaler-sync-period``)."""
    tolerance: float = 0.1
    """No scaling while usage/target is within this of 1.0."""
    downscale_stabilization: float = 300.0
    """Scale-down window when ``behavior.scaleDown.stabilizationWindowSeconds`` is unset."""
    cpu_initialization_period: float = 300.0
    """After a pod starts, CPU samples from before one window of readiness are ignored."""
    initial_readiness_delay: float = 30.0
    """An unready pod that has never been ready within this of its start is ignored."""


DEFAULT_SETTINGS = HPASettings()
"""What a controller built without ``settings`` uses (tests shorten the periods here)."""


class _Failure(Exception):
    def __init__(self, reason: str, message: str, condition_message: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.condition_message = condition_message or (
            f"the HPA was unable to compute the replica count: {message}"
        )


def set_condition(status: Obj, ctype: str, value: str, reason: str, message: str) -> None:
    """``setConditionInList``: lastTransitionTime moves only when the status flips."""
    conditions = status.setdefault("conditions", [])
    current = next((c for c in conditions if c.get("type") == ctype), None)
    if current is None:
        current = {"type": ctype}
        conditions.append(current)
    if current.get("status") != value:
        current["lastTransitionTime"] = rfc3339()
    current.update(status=value, reason=reason, message=message)


def _milli_quantity(milli: int) -> str:
    return format_quantity(Decimal(milli) / 1000, "DecimalSI")


class HorizontalPodAutoscalerController(Controller[Key]):
    name = "horizontal-pod-autoscaler"
    component = "horizontal-pod-autoscaler"
    workers = 2

    def __init__(
        self,
        client: Client,
        informers: InformerFactory,
        *,
        metrics: PodMetricsSource | None = None,
        settings: HPASettings | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        super().__init__(client, informers, events=events)
        self.metrics = metrics
        self.settings = settings or replace(DEFAULT_SETTINGS)
        self.scaling = Scaling(downscale_window=self.settings.downscale_stabilization)
        self._due: dict[Key, float] = {}

    def setup(self) -> None:
        self.hpas = self.watch(HPAS)
        self.pods = self.watch(PODS)
        self.hpas.add_handler(self._on_hpa)

    def _on_hpa(self, etype: str, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        if etype == "DELETED":
            self.scaling.forget(key)
            self._due.pop(key, None)
            return
        # A status write of our own needs no new look; a spec change does.
        if old is None or (old.get("spec") != obj.get("spec")):
            self.queue.add(key)

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cached = self.hpas.get(name, namespace)
        if cached is None:
            self.scaling.forget(key)
            return None
        hpa = deep_copy(cached)
        before = deep_copy(hpa.get("status") or {})
        status: Obj = deep_copy(before)
        failure: errors.ApiError | None = None
        try:
            await self._reconcile(key, hpa, status)
        except errors.ApiError as exc:
            failure = exc
        status["observedGeneration"] = int(hpa["metadata"].get("generation") or 0)
        if status != before:
            try:
                await self.client.update_status(
                    HPAS, {**hpa, "status": status}, namespace=namespace
                )
            except errors.NotFound:
                return None
        if failure is not None:
            raise failure
        return self._resync_after(key)

    def _resync_after(self, key: Key) -> float | None:
        """The next periodic look, unless one is already scheduled (reconciles triggered by
        spec changes must not multiply the periodic ones)."""
        loop_now = asyncio.get_running_loop().time()
        due = self._due.get(key)
        if due is not None and due > loop_now + 0.001:
            return None
        self._due[key] = loop_now + self.settings.sync_period
        return self.settings.sync_period

    async def _reconcile(self, key: Key, hpa: Obj, status: Obj) -> None:
        spec = hpa.get("spec") or {}
        namespace = hpa["metadata"]["namespace"]
        ref = spec.get("scaleTargetRef") or {}
        target_rt = resources.by_kind(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        try:
            if target_rt is None or target_rt.subresource("scale") is None:
                group = str(ref.get("apiVersion") or "").rpartition("/")[0]
                raise errors.NotFound(f'no matches for kind "{ref.get("kind")}" in group "{group}"')
            scale = await self.client.get(
                target_rt, str(ref.get("name")), namespace=namespace, subresource="scale"
            )
        except errors.ApiError as exc:
            set_condition(
                status,
                "AbleToScale",
                "False",
                "FailedGetScale",
                f"the HPA controller was unable to get the target's current scale: {exc.message}",
            )
            self.events.event(hpa, "Warning", "FailedGetScale", exc.message)
            return
        set_condition(
            status,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        self.scaling.record_initial(key, current)
        min_replicas = int(spec["minReplicas"]) if spec.get("minReplicas") is not None else 1
        max_replicas = int(spec.get("maxReplicas") or 0)
        metric_statuses: list[Obj] = []
        desired = 0
        rescale = True
        reason = ""
        if current == 0 and min_replicas != 0:
            rescale = False
            set_condition(
                status,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposal, metric_name, metric_statuses, failure = await self._compute(
                hpa, scale, status, current
            )
            if proposal < 0:
                self._set_current(status, current, metric_statuses)
                assert failure is not None
                self.events.event(
                    hpa,
                    "Warning",
                    "FailedComputeMetricsReplicas",
                    f"invalid metrics ({failure[0]} invalid out of {failure[1]}), "
                    f"first error is: {failure[2]}",
                )
                return
            desired = proposal
            if desired > current:
                reason = f"{metric_name} above target"
            elif desired < current:
                reason = "All metrics below target"
            decision = self.scaling.normalize(
                key,
                behavior=spec.get("behavior"),
                current=current,
                desired=desired,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
            )
            set_condition(
                status, "AbleToScale", "True", decision.able_reason, decision.able_message
            )
            set_condition(
                status,
                "ScalingLimited",
                "True" if decision.limited else "False",
                decision.limited_reason,
                decision.limited_message,
            )
            desired = decision.replicas
            rescale = desired != current
        if rescale:
            assert target_rt is not None
            scale["spec"]["replicas"] = desired
            try:
                await self.client.update(target_rt, scale, namespace=namespace, subresource="scale")
            except errors.ApiError as exc:
                self.events.event(
                    hpa,
                    "Warning",
                    "FailedRescale",
                    f"New size: {desired}; reason: {reason}; error: {exc.message}",
                )
                set_condition(
                    status,
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    f"the HPA controller was unable to update the target scale: {exc.message}",
                )
                self._set_current(status, current, metric_statuses)
                raise
            set_condition(
                status,
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self.events.event(
                hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}"
            )
            self.scaling.record_scale(key, spec.get("behavior"), current, desired)
            self.log.info("rescaled", hpa=hpa["metadata"]["name"], replicas=desired, reason=reason)
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if metric_statuses:
            status["currentMetrics"] = metric_statuses
        else:
            status.pop("currentMetrics", None)
        if rescale:
            status["lastScaleTime"] = rfc3339()

    @staticmethod
    def _set_current(status: Obj, current: int, metric_statuses: list[Obj]) -> None:
        status["currentReplicas"] = current
        if metric_statuses:
            status["currentMetrics"] = metric_statuses
        else:
            status.pop("currentMetrics", None)

    async def _compute(
        self, hpa: Obj, scale: Obj, status: Obj, current: int
    ) -> tuple[int, str, list[Obj], tuple[int, int, str] | None]:
        """(replicas, metric name, metric statuses, failure) over every metric; replicas -1
        when they are all invalid (or some are and the rest would scale down)."""
        specs = list((hpa.get("spec") or {}).get("metrics") or [])
        selector_text = str((scale.get("status") or {}).get("selector") or "")
        if not selector_text:
            self.events.event(hpa, "Warning", "SelectorRequired", "selector is required")
            set_condition(
                status,
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
            return -1, "", [], (len(specs), len(specs), "selector is required")
        try:
            parse_label_selector(selector_text)
        except errors.BadRequest as exc:
            set_condition(status, "ScalingActive", "False", "InvalidSelector", exc.message)
            return -1, "", [], (len(specs), len(specs), exc.message)
        statuses: list[Obj] = [{"type": ""} for _ in specs]
        best, best_name, found = 0, "", False
        invalid = 0
        first: _Failure | None = None
        for i, metric in enumerate(specs):
            try:
                replicas, metric_name, statuses[i] = await self._one(
                    hpa, metric, selector_text, current
                )
            except _Failure as failure:
                invalid += 1
                if first is None:
                    first = failure
                self.events.event(hpa, "Warning", failure.reason, failure.message)
                continue
            if not found or replicas > best:
                best, best_name, found = replicas, metric_name, True
        if invalid >= len(specs) or (invalid > 0 and best < current):
            assert first is not None
            set_condition(status, "ScalingActive", "False", first.reason, first.condition_message)
            return -1, "", statuses, (invalid, len(specs), first.message)
        set_condition(
            status,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the HPA was able to successfully calculate a replica count from {best_name}",
        )
        return best, best_name, statuses, None

    async def _one(
        self, hpa: Obj, metric: Obj, selector: str, current: int
    ) -> tuple[int, str, Obj]:
        mtype = str(metric.get("type") or "")
        if mtype not in ("Resource", "ContainerResource"):
            reason = (
                f"FailedGet{mtype}Metric"
                if mtype in ("Pods", "Object", "External")
                else ("InvalidMetricSourceType")
            )
            raise _Failure(
                reason,
                f"unable to get {mtype.lower()} metric: no custom or external metrics API "
                "is served by procorch",
            )
        key = "resource" if mtype == "Resource" else "containerResource"
        source = metric.get(key) or {}
        resource = str(source.get("name") or "")
        container = str(source.get("container") or "") if mtype == "ContainerResource" else ""
        target = source.get("target") or {}
        reason = f"FailedGet{mtype}Metric"
        namespace = hpa["metadata"]["namespace"]
        try:
            items = await self._fetch(namespace, selector)
            if not items:
                raise calc.MetricError("no metrics returned from resource metrics API")
        except calc.MetricError as exc:
            kind = "usage" if target.get("averageValue") is not None else "utilization"
            raise _Failure(
                reason,
                f"failed to get {resource} {kind}: unable to get metrics for resource "
                f"{resource}: {exc}",
            ) from exc
        metrics = calc.pod_metrics(items, resource, container)
        pods = self.pods.list(namespace, parse_label_selector(selector))
        at = now()
        try:
            if target.get("averageValue") is not None:
                estimate = calc.raw_resource_replicas(
                    current=current,
                    target_usage=calc.milli_value(target["averageValue"]),
                    resource=resource,
                    pods=pods,
                    metrics=metrics,
                    settings=self.settings,
                    now=at,
                )
                value: Obj = {"averageValue": _milli_quantity(estimate.raw)}
                name = f"{resource} resource"
            elif target.get("averageUtilization") is not None:
                estimate = calc.resource_replicas(
                    current=current,
                    target_utilization=int(target["averageUtilization"]),
                    resource=resource,
                    pods=pods,
                    metrics=metrics,
                    settings=self.settings,
                    now=at,
                    container=container,
                )
                value = {
                    "averageUtilization": estimate.utilization,
                    "averageValue": _milli_quantity(estimate.raw),
                }
                name = f"{resource} resource utilization (percentage of request)"
            else:
                raise calc.MetricError(
                    "invalid resource metric source: neither an average utilization target "
                    "nor an average value (usage) target was set"
                )
        except calc.MetricError as exc:
            kind = "usage" if target.get("averageValue") is not None else "utilization"
            raise _Failure(reason, f"failed to get {resource} {kind}: {exc}") from exc
        if container:
            name = f"{resource} container resource utilization (percentage of request)"
            status: Obj = {
                "type": mtype,
                key: {"name": resource, "container": container, "current": value},
            }
        else:
            status = {"type": mtype, key: {"name": resource, "current": value}}
        return estimate.replicas, name, status

    async def _fetch(self, namespace: str, selector: str) -> list[Obj]:
        if self.metrics is None:
            raise calc.MetricError(
                "unable to fetch metrics from resource metrics API: the server could not find "
                "the requested resource (get pods.metrics.k8s.io)"
            )
        try:
            return await self.metrics(namespace, selector)
        except errors.ApiError as exc:
            raise calc.MetricError(
                f"unable to fetch metrics from resource metrics API: {exc.message}"
            ) from exc
