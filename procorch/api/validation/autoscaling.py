"""HorizontalPodAutoscaler (autoscaling/v2): replica bounds, scale target, metric specs and
scaling behavior.

Mirrors Kubernetes' autoscaling validation (HPAScaleToZero off, as in 1.32: minReplicas >= 1).
Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import forbidden, invalid, not_supported, required
from procorch.api.validation import formats
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    index,
    items,
    present,
)
from procorch.api.validation.meta import (
    name_is_dns_subdomain,
    validate_dns1123_label,
    validate_object_meta,
)
from procorch.api.validation.resources import quantity, validate_container_resource_name

MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_SECONDS = 3600
_SOURCES = {
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "External": "external",
    "ContainerResource": "containerResource",
}
_SOURCE_TYPES = sorted(_SOURCES)
_SELECT_POLICIES = ["Disabled", "Max", "Min"]
_POLICY_TYPES = ["Percent", "Pods"]


def _reference(ref: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    for field in ("kind", "name"):
        value = as_str(ref.get(field))
        if not value:
            causes.append(required(child(path, field)))
        else:
            causes += [
                invalid(child(path, field), value, msg)
                for msg in formats.is_valid_path_segment_name(value)
            ]
    return causes


def _metric_identifier(ident: dict[str, Any], path: str) -> Causes:
    name = as_str(ident.get("name"))
    if not name:
        return [required(child(path, "name"), "must specify a metric name")]
    return [
        invalid(child(path, "name"), name, msg) for msg in formats.is_valid_path_segment_name(name)
    ]


def _target(target: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    kind = as_str(target.get("type"))
    if not kind:
        causes.append(required(child(path, "type"), "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        causes.append(
            invalid(child(path, "type"), kind, "must be either Utilization, Value, or AverageValue")
        )
    for field in ("value", "averageValue"):
        if present(target, field):
            number, errs = quantity(child(path, field), target[field])
            causes += errs
            if number is not None and number <= 0:
                causes.append(invalid(child(path, field), target[field], "must be positive"))
    utilization = target.get("averageUtilization")
    if utilization is not None and (as_int(utilization) or 0) < 1:
        causes.append(
            invalid(child(path, "averageUtilization"), utilization, "must be greater than 0")
        )
    return causes


def _source(kind: str, src: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    target = as_dict(src.get("target"))
    target_path = child(path, "target")
    if kind in ("object", "external", "pods"):
        if kind == "object":
            causes += _reference(
                as_dict(src.get("describedObject")), child(path, "describedObject")
            )
        causes += _metric_identifier(as_dict(src.get("metric")), child(path, "metric"))
        causes += _target(target, target_path)
        has_value, has_average = present(target, "value"), present(target, "averageValue")
        if kind == "object" and not has_value and not has_average:
            causes.append(
                required(
                    child(target_path, "averageValue"),
                    "must set either a target value or averageValue",
                )
            )
        if kind == "external":
            if not has_value and not has_average:
                causes.append(
                    required(
                        child(target_path, "averageValue"),
                        "must set either a target value for metric or a per-pod target",
                    )
                )
            if has_value and has_average:
                causes.append(
                    forbidden(
                        child(target_path, "value"),
                        "may not set both a target value for metric and a per-pod target",
                    )
                )
        if kind == "pods" and not has_average:
            causes.append(
                required(
                    child(target_path, "averageValue"),
                    "must specify a positive target averageValue",
                )
            )
        return causes
    name = as_str(src.get("name"))
    if not name:
        causes.append(required(child(path, "name"), "must specify a resource name"))
    elif kind == "containerResource":
        causes += validate_container_resource_name(name, child(path, "name"))
    if kind == "containerResource":
        container = as_str(src.get("container"))
        if not container:
            causes.append(required(child(path, "container"), "must specify a container"))
        else:
            causes += validate_dns1123_label(container, child(path, "container"))
    causes += _target(target, target_path)
    has_util, has_average = present(target, "averageUtilization"), present(target, "averageValue")
    if not has_util and not has_average:
        causes.append(
            required(
                child(target_path, "averageUtilization"),
                "must set either a target raw value or a target utilization",
            )
        )
    if has_util and has_average:
        causes.append(
            forbidden(
                child(target_path, "averageValue"),
                "may not set both a target raw value and a target utilization",
            )
        )
    return causes


def _metric(spec: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    kind = as_str(spec.get("type"))
    if not kind:
        causes.append(required(child(path, "type"), "must specify a metric source type"))
    if kind not in _SOURCES:
        causes.append(not_supported(child(path, "type"), kind, _SOURCE_TYPES))
    given = [field for field in _SOURCES.values() if present(spec, field)]
    if given:
        causes += _source(given[0], as_dict(spec[given[0]]), child(path, given[0]))
    expected = _SOURCES.get(kind, "")
    if expected and not present(spec, expected):
        causes.append(
            required(child(path, expected), "must populate information for the given metric source")
        )
    if kind not in _SOURCES:
        # Kubernetes reports an unknown type twice (a check, then its switch's default).
        causes.append(not_supported(child(path, "type"), kind, _SOURCE_TYPES))
    if len(given) != 1:
        causes += [
            forbidden(child(path, field), "must populate the given metric source only")
            for field in given
            if field != expected
        ]
    return causes


def _rules(rules: Any, path: str) -> Causes:
    if rules is None:
        return []
    rules = as_dict(rules)
    causes: Causes = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None:
        seconds = as_int(window) or 0
        if seconds < 0:
            causes.append(
                invalid(
                    child(path, "stabilizationWindowSeconds"),
                    seconds,
                    "must be greater than or equal to zero",
                )
            )
        if seconds > MAX_STABILIZATION_SECONDS:
            causes.append(
                invalid(
                    child(path, "stabilizationWindowSeconds"),
                    seconds,
                    f"must be less than or equal to {MAX_STABILIZATION_SECONDS}",
                )
            )
    select = rules.get("selectPolicy")
    if select is not None and select not in _SELECT_POLICIES:
        causes.append(not_supported(child(path, "selectPolicy"), select, _SELECT_POLICIES))
    policies = as_list(rules.get("policies"))
    if not policies:
        causes.append(required(child(path, "policies"), "must specify at least one Policy"))
    for i, policy in items(policies):
        policy_path = index(child(path, "policies"), i)
        kind = policy.get("type")
        if kind not in _POLICY_TYPES:
            causes.append(not_supported(child(policy_path, "type"), kind, _POLICY_TYPES))
        if (as_int(policy.get("value")) or 0) <= 0:
            causes.append(
                invalid(
                    child(policy_path, "value"), policy.get("value"), "must be greater than zero"
                )
            )
        period = as_int(policy.get("periodSeconds")) or 0
        if period <= 0:
            causes.append(
                invalid(child(policy_path, "periodSeconds"), period, "must be greater than zero")
            )
        if period > MAX_PERIOD_SECONDS:
            causes.append(
                invalid(
                    child(policy_path, "periodSeconds"),
                    period,
                    f"must be less than or equal to {MAX_PERIOD_SECONDS}",
                )
            )
    return causes


def validate_hpa(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    lower_bound = 1
    if old is not None and as_dict(old.get("spec")).get("minReplicas") == 0:
        lower_bound = 0
    min_replicas = as_int(spec.get("minReplicas"))
    max_replicas = as_int(spec.get("maxReplicas")) or 0
    if min_replicas is not None and min_replicas < lower_bound:
        causes.append(
            invalid(
                "spec.minReplicas", min_replicas, f"must be greater than or equal to {lower_bound}"
            )
        )
    if max_replicas < 1:
        causes.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    if min_replicas is not None and max_replicas < min_replicas:
        causes.append(
            invalid(
                "spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"
            )
        )
    causes += _reference(as_dict(spec.get("scaleTargetRef")), "spec.scaleTargetRef")
    for i, metric in items(spec.get("metrics")):
        causes += _metric(metric, index("spec.metrics", i))
    if min_replicas == 0 and not any(
        as_dict(m).get("type") in ("Object", "External") for m in as_list(spec.get("metrics"))
    ):
        causes.append(
            forbidden(
                "spec.metrics",
                "must specify at least one Object or External "
                "metric to support scaling to zero replicas",
            )
        )
    behavior = spec.get("behavior")
    if behavior is not None:
        causes += _rules(as_dict(behavior).get("scaleUp"), "spec.behavior.scaleUp")
        causes += _rules(as_dict(behavior).get("scaleDown"), "spec.behavior.scaleDown")
    return causes
