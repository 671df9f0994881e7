"""Deployment, ReplicaSet, DaemonSet and ControllerRevision (apps/v1): selector against
template, replicas, update strategy, history and progress limits; the selector is immutable
in apps/v1, and so is a ControllerRevision's data.

Mirrors Kubernetes' ``ValidateDeploymentSpec``, ``ValidateReplicaSetSpec``,
``ValidateDaemonSetSpec`` and ``ValidateControllerRevision``.
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
    as_str,
    child,
    immutable,
    nonnegative,
    present,
)
from procorch.api.validation.meta import (
    name_is_dns_subdomain,
    selector_is_empty,
    selector_is_valid,
    selector_matches,
    validate_label_selector,
    validate_object_meta,
)
from procorch.api.validation.podspec import template_labels, validate_pod_template


def _int_or_percent(value: Any, path: str) -> Causes:
    if isinstance(value, str):
        return [invalid(path, value, msg) for msg in formats.is_valid_percent(value)]
    number = as_int(value)
    if number is None:
        return [invalid(path, value, "must be an integer or percentage (e.g '5%%')")]
    return nonnegative(path, number)


def _int_or_percent_value(value: Any) -> int:
    if isinstance(value, str):
        if formats.is_valid_percent(value):
            return 0
        return int(value[:-1])
    return as_int(value) or 0


def _selector_and_template(spec: dict[str, Any], kind: str, path: str) -> Causes:
    """What Deployments, ReplicaSets and DaemonSets share: selector, template, restart
    policy."""
    causes: Causes = []
    selector = spec.get("selector")
    if selector is None:
        causes.append(required(child(path, "selector")))
    else:
        causes += validate_label_selector(selector, child(path, "selector"))
        if selector_is_empty(selector):
            # Kubernetes says "deployment" for ReplicaSets too.
            noun = "daemonset" if kind == "DaemonSet" else "deployment"
            causes.append(
                invalid(child(path, "selector"), selector, f"empty selector is invalid for {noun}")
            )
    if not selector_is_valid(selector):
        causes.append(invalid(child(path, "selector"), selector, "invalid label selector"))
        return causes
    template = spec.get("template")
    template_path = child(path, "template")
    if template is None:
        causes.append(required(template_path))
        return causes
    # A missing selector matches nothing in Kubernetes, so both problems are reported.
    if selector is None or (
        not selector_is_empty(selector)
        and not selector_matches(selector, template_labels(template))
    ):
        causes.append(
            invalid(
                child(template_path, "metadata", "labels"),
                template_labels(template),
                "`selector` does not match template `labels`",
            )
        )
    causes += validate_pod_template(template, template_path)
    template_spec = as_dict(as_dict(template).get("spec"))
    restart = as_str(template_spec.get("restartPolicy"))
    if restart != "Always":
        causes.append(
            not_supported(child(template_path, "spec", "restartPolicy"), restart, ["Always"])
        )
    if present(template_spec, "activeDeadlineSeconds"):
        deadline_path = child(template_path, "spec", "activeDeadlineSeconds")
        message = f"activeDeadlineSeconds in {kind} is not Supported"
        causes.append(
            # Kubernetes words the same rule as Invalid for DaemonSets.
            invalid(deadline_path, template_spec["activeDeadlineSeconds"], message)
            if kind == "DaemonSet"
            else forbidden(deadline_path, message)
        )
    return causes


def _strategy(strategy: Any, path: str) -> Causes:
    strategy = as_dict(strategy)
    kind = strategy.get("type")
    causes: Causes = []
    if kind == "Recreate":
        if present(strategy, "rollingUpdate"):
            causes.append(
                forbidden(
                    child(path, "rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
    elif kind == "RollingUpdate":
        if not present(strategy, "rollingUpdate"):
            causes.append(
                required(child(path, "rollingUpdate"), "this should be defaulted and never be nil")
            )
        else:
            rolling = as_dict(strategy["rollingUpdate"])
            rolling_path = child(path, "rollingUpdate")
            unavailable = rolling.get("maxUnavailable", 0)
            surge = rolling.get("maxSurge", 0)
            causes += _int_or_percent(unavailable, child(rolling_path, "maxUnavailable"))
            causes += _int_or_percent(surge, child(rolling_path, "maxSurge"))
            if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
                causes.append(
                    invalid(
                        child(rolling_path, "maxUnavailable"),
                        unavailable,
                        "may not be 0 when `maxSurge` is 0",
                    )
                )
            if (
                isinstance(unavailable, str)
                and not formats.is_valid_percent(unavailable)
                and int(unavailable[:-1]) > 100
            ):
                causes.append(
                    invalid(
                        child(rolling_path, "maxUnavailable"),
                        unavailable,
                        "must not be greater than 100%",
                    )
                )
    else:
        causes.append(not_supported(path, strategy, ["Recreate", "RollingUpdate"]))
    return causes


def validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    causes += nonnegative("spec.replicas", spec.get("replicas"))
    causes += _selector_and_template(spec, "Deployment", "spec")
    causes += _strategy(spec.get("strategy"), "spec.strategy")
    min_ready = as_int(spec.get("minReadySeconds")) or 0
    causes += nonnegative("spec.minReadySeconds", min_ready)
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        causes += nonnegative("spec.progressDeadlineSeconds", deadline)
        if (as_int(deadline) or 0) <= min_ready:
            causes.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    if old is not None:
        causes += immutable(
            "spec.selector", spec.get("selector"), as_dict(old.get("spec")).get("selector")
        )
    return causes


def _replicated(obj: dict[str, Any], old: dict[str, Any] | None, kind: str) -> Causes:
    """What ReplicaSets and StatefulSets share: replicas, selector and template (which must
    match), and on update an unchanged selector."""
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    causes += nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += _selector_and_template(spec, kind, "spec")
    if old is not None:
        causes += immutable(
            "spec.selector", spec.get("selector"), as_dict(old.get("spec")).get("selector")
        )
    return causes


def validate_replica_set(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    return _replicated(obj, old, "ReplicaSet")


def _daemon_set_strategy(strategy: Any, path: str) -> Causes:
    """``ValidateDaemonSetUpdateStrategy``: OnDelete, or RollingUpdate with exactly one of
    maxUnavailable and maxSurge non-zero."""
    strategy = as_dict(strategy)
    kind = strategy.get("type")
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [not_supported(path, strategy, ["RollingUpdate", "OnDelete"])]
    if not present(strategy, "rollingUpdate"):
        return [required(child(path, "rollingUpdate"))]
    rolling = as_dict(strategy["rollingUpdate"])
    rolling_path = child(path, "rollingUpdate")
    causes: Causes = []
    for name in ("maxUnavailable", "maxSurge"):
        value = rolling.get(name, 0)
        causes += _int_or_percent(value, child(rolling_path, name))
        if isinstance(value, str) and not formats.is_valid_percent(value) and int(value[:-1]) > 100:
            causes.append(
                invalid(child(rolling_path, name), value, "must not be greater than 100%")
            )
    has_unavailable = _int_or_percent_value(rolling.get("maxUnavailable", 0)) != 0
    has_surge = _int_or_percent_value(rolling.get("maxSurge", 0)) != 0
    if has_unavailable and has_surge:
        causes.append(
            invalid(
                child(rolling_path, "maxSurge"),
                rolling.get("maxSurge"),
                "may not be set when maxUnavailable is non-zero",
            )
        )
    elif not has_unavailable and not has_surge:
        causes.append(
            required(child(rolling_path, "maxUnavailable"), "cannot be 0 when maxSurge is 0")
        )
    return causes


def validate_daemon_set(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    causes += _selector_and_template(spec, "DaemonSet", "spec")
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += _daemon_set_strategy(spec.get("updateStrategy"), "spec.updateStrategy")
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    if old is not None:
        causes += immutable(
            "spec.selector", spec.get("selector"), as_dict(old.get("spec")).get("selector")
        )
    return causes


def validate_controller_revision(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    if obj.get("data") is None:
        causes.append(required("data", "data is mandatory"))
    causes += nonnegative("revision", obj.get("revision"))
    if old is not None:
        causes += immutable("data", obj.get("data"), old.get("data"))
    return causes


def validate_stateful_set(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    """The parts of ``ValidateStatefulSet`` a stored StatefulSet needs."""
    return _replicated(obj, old, "StatefulSet")


def validate_replication_controller(
    obj: dict[str, Any], old: dict[str, Any] | None = None
) -> Causes:
    """The parts of ``ValidateReplicationController`` a stored one needs: replicas, a map
    selector the template's labels match, and the template."""
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    causes += nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    selector = as_dict(spec.get("selector"))
    if not selector:
        causes.append(required("spec.selector"))
    template = spec.get("template")
    if template is None:
        causes.append(required("spec.template"))
        return causes
    labels = template_labels(template)
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(
            invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    causes += validate_pod_template(template, "spec.template")
    return causes
