"""Defaults for HorizontalPodAutoscaler (autoscaling/v2), IngressClass (networking.k8s.io/v1),
EndpointSlice (discovery.k8s.io/v1) and the RBAC bindings.

Mirrors Kubernetes 1.32: ``SetDefaults_HorizontalPodAutoscaler`` (scaling behavior is filled
in only when ``behavior`` is given, then for both directions), ``SetDefaults_IngressClass``,
``SetDefaults_EndpointPort``, ``SetDefaults_RoleBinding``/``ClusterRoleBinding``/``Subject``.
Ingress, Lease and the rest have no defaults in Kubernetes. Pure data.
"""

from __future__ import annotations

import copy
from typing import Any

from procorch.api.defaults.pod import _dict, _dicts, set_if_empty, set_missing

RBAC_GROUP = "rbac.authorization.k8s.io"
DEFAULT_CPU_UTILIZATION = 80
_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
# No stabilization window: the controller's --horizontal-pod-autoscaler-downscale-
# stabilization flag applies when the field is unset.
_SCALE_DOWN = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _scaling_rules(given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    rules = copy.deepcopy(defaults)
    if isinstance(given, dict):
        for name in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
            if given.get(name) is not None:
                rules[name] = given[name]
        for name, value in given.items():
            rules.setdefault(name, value)
    return rules


def horizontal_pod_autoscaler(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_missing(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": DEFAULT_CPU_UTILIZATION,
                    },
                },
            }
        ]
    behavior = _dict(spec, "behavior")
    if behavior is not None:
        behavior["scaleUp"] = _scaling_rules(behavior.get("scaleUp"), _SCALE_UP)
        behavior["scaleDown"] = _scaling_rules(behavior.get("scaleDown"), _SCALE_DOWN)


def ingress_class(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    parameters = _dict(spec, "parameters") if spec is not None else None
    if parameters is not None:
        set_missing(parameters, "scope", "Cluster")


def endpoint_slice(obj: dict[str, Any]) -> None:
    for port in _dicts(obj, "ports"):
        set_missing(port, "name", "")
        set_missing(port, "protocol", "TCP")


def _subjects(obj: dict[str, Any]) -> None:
    for subject in _dicts(obj, "subjects"):
        if subject.get("apiGroup"):
            continue
        # A ServiceAccount's group is the core group, "", which JSON leaves out.
        if subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


def role_binding(obj: dict[str, Any]) -> None:
    role_ref = _dict(obj, "roleRef")
    if role_ref is not None:
        set_if_empty(role_ref, "apiGroup", RBAC_GROUP)
    _subjects(obj)
