"""PodDisruptionBudget (policy/v1): one of minAvailable and maxUnavailable, each a
non-negative integer or a percentage of at most 100 %, a valid selector, a known unhealthy-pod
eviction policy.

Mirrors Kubernetes' ``ValidatePodDisruptionBudgetSpec``.
Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import invalid, not_supported
from procorch.api.validation import formats
from procorch.api.validation._base import Causes, as_dict, as_int, child, nonnegative
from procorch.api.validation.meta import (
    name_is_dns_subdomain,
    validate_label_selector,
    validate_object_meta,
)

UNHEALTHY_POD_EVICTION_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]


def _int_or_percent_up_to_100(value: Any, path: str) -> Causes:
    if isinstance(value, str):
        problems = formats.is_valid_percent(value)
        if problems:
            return [invalid(path, value, msg) for msg in problems]
        if int(value[:-1]) > 100:
            return [invalid(path, value, "must not be greater than 100%")]
        return []
    number = as_int(value)
    if number is None:
        return [invalid(path, value, "must be an integer or percentage (e.g '5%%')")]
    return nonnegative(path, number)


def validate_pdb(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    path = "spec"
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        causes.append(invalid(path, spec, "minAvailable and maxUnavailable cannot be both set"))
    for field in ("minAvailable", "maxUnavailable"):
        if spec.get(field) is not None:
            causes += _int_or_percent_up_to_100(spec[field], child(path, field))
    if spec.get("selector") is not None:
        causes += validate_label_selector(spec["selector"], child(path, "selector"))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        causes.append(
            not_supported(
                child(path, "unhealthyPodEvictionPolicy"), policy, UNHEALTHY_POD_EVICTION_POLICIES
            )
        )
    return causes
