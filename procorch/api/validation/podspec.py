"""PodSpec and PodTemplateSpec: policies, scheduling constraints, DNS settings, host aliases.

Mirrors Kubernetes' ``ValidatePodSpec``, ``ValidateTolerations``, ``validateAffinity`` and
``validatePodDNSConfig``; containers live in :mod:`procorch.api.validation.containers`,
volumes in :mod:`procorch.api.validation.volumes`. Pure data.
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
    str_map,
)
from procorch.api.validation.containers import validate_containers, validate_init_containers
from procorch.api.validation.meta import (
    name_is_dns_label,
    name_is_dns_subdomain,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_name,
    validate_label_selector,
    validate_labels,
    validate_qualified_name,
    validate_template_meta,
)
from procorch.api.validation.volumes import validate_volumes

_TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
MAX_INT32 = 2**31 - 1


def validate_tolerations(tolerations: Any, path: str) -> Causes:
    causes: Causes = []
    for i, tol in items(tolerations):
        tol_path = index(path, i)
        tol_key = as_str(tol.get("key"))
        operator = as_str(tol.get("operator"))
        effect = as_str(tol.get("effect"))
        value = as_str(tol.get("value"))
        if tol_key:
            causes += validate_label_name(tol_key, child(tol_path, "key"))
        if not tol_key and operator != "Exists":
            causes.append(
                invalid(
                    child(tol_path, "operator"),
                    operator,
                    "operator must be Exists when `key` is empty, which means "
                    '"match all values and all keys"',
                )
            )
        if present(tol, "tolerationSeconds") and effect != "NoExecute":
            causes.append(
                invalid(
                    child(tol_path, "effect"),
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            msgs = formats.is_label_value(value)
            if msgs:
                causes.append(invalid(child(tol_path, "operator"), value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                causes.append(
                    invalid(
                        child(tol_path, "operator"),
                        tol,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            causes.append(not_supported(child(tol_path, "operator"), operator, ["Equal", "Exists"]))
        if effect and effect not in _TAINT_EFFECTS:
            causes.append(not_supported(child(tol_path, "effect"), effect, _TAINT_EFFECTS))
    return causes


def _node_selector_term(term: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    for j, req in items(term.get("matchExpressions")):
        req_path = index(child(path, "matchExpressions"), j)
        operator = req.get("operator")
        values = as_list(req.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(
                    required(
                        child(req_path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    forbidden(
                        child(req_path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        elif operator in ("Gt", "Lt"):
            if len(values) != 1:
                causes.append(
                    required(
                        child(req_path, "values"),
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    )
                )
        else:
            causes.append(
                invalid(child(req_path, "operator"), operator, "not a valid selector operator")
            )
        causes += validate_label_name(as_str(req.get("key")), child(req_path, "key"))
    for j, req in items(term.get("matchFields")):
        req_path = index(child(path, "matchFields"), j)
        operator = req.get("operator")
        values = as_list(req.get("values"))
        if operator in ("In", "NotIn"):
            if len(values) != 1:
                causes.append(
                    required(
                        child(req_path, "values"),
                        "must be only one value when `operator` is 'In' or "
                        "'NotIn' for node field selector",
                    )
                )
        else:
            causes.append(
                invalid(child(req_path, "operator"), operator, "not a valid selector operator")
            )
        if req.get("key") != "metadata.name":
            causes.append(
                invalid(child(req_path, "key"), req.get("key"), "not a valid field selector key")
            )
        else:
            for k, value in enumerate(values):
                causes += [
                    invalid(index(child(req_path, "values"), k), value, msg)
                    for msg in name_is_dns_subdomain(as_str(value), False)
                ]
    return causes


def _pod_affinity_terms(terms: Any, path: str, *, weighted: bool) -> Causes:
    causes: Causes = []
    for i, entry in items(terms):
        term_path = index(path, i)
        term = entry
        if weighted:
            weight = as_int(entry.get("weight")) or 0
            if not 1 <= weight <= 100:
                causes.append(
                    invalid(child(term_path, "weight"), weight, "must be in the range 1-100")
                )
            term = as_dict(entry.get("podAffinityTerm"))
            term_path = child(term_path, "podAffinityTerm")
        if present(term, "labelSelector"):
            causes += validate_label_selector(
                term["labelSelector"], child(term_path, "labelSelector")
            )
        if present(term, "namespaceSelector"):
            causes += validate_label_selector(
                term["namespaceSelector"], child(term_path, "namespaceSelector")
            )
        for ns in as_list(term.get("namespaces")):
            causes += [
                invalid(child(term_path, "namespace"), ns, msg)
                for msg in name_is_dns_label(as_str(ns), False)
            ]
        topology_key = as_str(term.get("topologyKey"))
        if not topology_key:
            causes.append(required(child(term_path, "topologyKey"), "can not be empty"))
        causes += validate_label_name(topology_key, child(term_path, "topologyKey"))
    return causes


def validate_affinity(affinity: Any, path: str) -> Causes:
    affinity = as_dict(affinity)
    causes: Causes = []
    node = as_dict(affinity.get("nodeAffinity"))
    node_path = child(path, "nodeAffinity")
    required_terms = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required_terms is not None:
        terms_path = child(
            node_path, "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"
        )
        terms = as_list(as_dict(required_terms).get("nodeSelectorTerms"))
        if not terms:
            causes.append(required(terms_path, "must have at least one node selector term"))
        for i, term in items(terms):
            causes += _node_selector_term(term, index(terms_path, i))
    for i, pref in items(node.get("preferredDuringSchedulingIgnoredDuringExecution")):
        pref_path = index(child(node_path, "preferredDuringSchedulingIgnoredDuringExecution"), i)
        weight = as_int(pref.get("weight")) or 0
        if not 1 <= weight <= 100:
            causes.append(invalid(child(pref_path, "weight"), weight, "must be in the range 1-100"))
        causes += _node_selector_term(
            as_dict(pref.get("preference")), child(pref_path, "preference")
        )
    for which in ("podAffinity", "podAntiAffinity"):
        section = as_dict(affinity.get(which))
        section_path = child(path, which)
        causes += _pod_affinity_terms(
            section.get("requiredDuringSchedulingIgnoredDuringExecution"),
            child(section_path, "requiredDuringSchedulingIgnoredDuringExecution"),
            weighted=False,
        )
        causes += _pod_affinity_terms(
            section.get("preferredDuringSchedulingIgnoredDuringExecution"),
            child(section_path, "preferredDuringSchedulingIgnoredDuringExecution"),
            weighted=True,
        )
    return causes


def _dns_config(spec: dict[str, Any], path: str) -> Causes:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not as_list(as_dict(config).get("nameservers")):
            return [
                required(
                    child(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if config is None:
        return []
    config = as_dict(config)
    causes: Causes = []
    nameservers = as_list(config.get("nameservers"))
    if len(nameservers) > 3:
        causes.append(
            invalid(
                child(path, "nameservers"), nameservers, "must not have more than 3 nameservers"
            )
        )
    for i, ns in enumerate(nameservers):
        causes += [
            invalid(index(child(path, "nameservers"), i), ns, msg)
            for msg in formats.is_valid_ip(as_str(ns))
        ]
    searches = [as_str(s) for s in as_list(config.get("searches"))]
    if len(searches) > 32:
        causes.append(
            invalid(child(path, "searches"), searches, "must not have more than 32 search paths")
        )
    if len(" ".join(searches)) > 2048:
        causes.append(
            invalid(
                child(path, "searches"),
                searches,
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        causes += validate_dns1123_subdomain(
            search.removesuffix("."), index(child(path, "searches"), i)
        )
    for i, option in items(config.get("options")):
        if not as_str(option.get("name")):
            causes.append(required(index(child(path, "options"), i), "must not be empty"))
    return causes


def validate_pod_spec(spec: Any, path: str, *, is_pod: bool) -> Causes:
    spec = as_dict(spec)
    causes: Causes = []
    grace = as_int(spec.get("terminationGracePeriodSeconds"))
    if spec.get("terminationGracePeriodSeconds") is None:
        causes.append(required(child(path, "terminationGracePeriodSeconds")))
    elif grace is not None and grace < 0:
        # Kubernetes clamps a negative grace period to 1 instead of refusing it; procorch
        # refuses it, as the brief asks of this field.
        causes.append(
            invalid(
                child(path, "terminationGracePeriodSeconds"),
                grace,
                "must be greater than or equal to 0",
            )
        )
    volumes, volume_causes = validate_volumes(spec.get("volumes"), child(path, "volumes"))
    causes += volume_causes
    causes += validate_containers(spec.get("containers"), volumes, grace, child(path, "containers"))
    causes += validate_init_containers(
        spec.get("initContainers"),
        spec.get("containers"),
        volumes,
        grace,
        child(path, "initContainers"),
    )
    if spec.get("hostNetwork") is True:
        for i, ctr in items(spec.get("containers")):
            for j, port in items(ctr.get("ports")):
                host_port = as_int(port.get("hostPort")) or 0
                container_port = as_int(port.get("containerPort")) or 0
                if (is_pod or host_port != 0) and host_port != container_port:
                    causes.append(
                        invalid(
                            child(
                                index(child(index(child(path, "containers"), i), "ports"), j),
                                "hostPort",
                            ),
                            host_port,
                            "must match `containerPort` when `hostNetwork` is true",
                        )
                    )
    restart = as_str(spec.get("restartPolicy"))
    if not restart:
        causes.append(required(child(path, "restartPolicy")))
    elif restart not in _RESTART_POLICIES:
        causes.append(not_supported(child(path, "restartPolicy"), restart, _RESTART_POLICIES))
    dns_policy = as_str(spec.get("dnsPolicy"))
    if not dns_policy:
        causes.append(required(child(path, "dnsPolicy")))
    elif dns_policy not in _DNS_POLICIES:
        causes.append(not_supported(child(path, "dnsPolicy"), dns_policy, _DNS_POLICIES))
    causes += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    for i, secret in items(spec.get("imagePullSecrets")):
        if set(secret) - {"name"}:
            causes.append(
                invalid(index(child(path, "imagePullSecrets"), i), secret, "only name may be set")
            )
    if present(spec, "affinity"):
        causes += validate_affinity(spec["affinity"], child(path, "affinity"))
    causes += _dns_config(spec, child(path, "dnsConfig"))
    for i, gate in items(spec.get("readinessGates")):
        causes += validate_qualified_name(
            as_str(gate.get("conditionType")),
            child(index(child(path, "readinessGates"), i), "conditionType"),
        )
    for field, name_fn in (
        ("serviceAccountName", name_is_dns_subdomain),
        ("nodeName", name_is_dns_subdomain),
        ("priorityClassName", name_is_dns_subdomain),
    ):
        value = as_str(spec.get(field))
        if value:
            causes += [invalid(child(path, field), value, msg) for msg in name_fn(value, False)]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        number = as_int(deadline)
        if number is None or not 1 <= number <= MAX_INT32:
            causes.append(
                invalid(
                    child(path, "activeDeadlineSeconds"),
                    deadline,
                    formats.inclusive_range_error(1, MAX_INT32),
                )
            )
    for field in ("hostname", "subdomain"):
        value = as_str(spec.get(field))
        if value:
            causes += validate_dns1123_label(value, child(path, field))
    causes += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    for i, alias in items(spec.get("hostAliases")):
        alias_path = index(child(path, "hostAliases"), i)
        ip = as_str(alias.get("ip"))
        causes += [invalid(child(alias_path, "ip"), ip, msg) for msg in formats.is_valid_ip(ip)]
        for j, hostname in enumerate(as_list(alias.get("hostnames"))):
            causes += validate_dns1123_subdomain(
                as_str(hostname), index(child(alias_path, "hostnames"), j)
            )
    preemption = spec.get("preemptionPolicy")
    if preemption is not None:
        if preemption == "":
            causes.append(required(child(path, "preemptionPolicy")))
        elif preemption not in ("PreemptLowerPriority", "Never"):
            causes.append(
                not_supported(
                    child(path, "preemptionPolicy"), preemption, ["PreemptLowerPriority", "Never"]
                )
            )
    return causes


def validate_pod_template(template: Any, path: str) -> Causes:
    """ValidatePodTemplateSpec: template metadata and a pod spec."""
    template = as_dict(template)
    # Kubernetes reports template labels as `<template>.labels` (ObjectMeta is inlined in Go).
    causes = validate_template_meta(template.get("metadata"), path)
    causes += validate_pod_spec(template.get("spec"), child(path, "spec"), is_pod=False)
    if as_list(as_dict(template.get("spec")).get("ephemeralContainers")):
        causes.append(
            forbidden(
                child(path, "spec", "ephemeralContainers"),
                "ephemeral containers not allowed in pod template",
            )
        )
    return causes


def template_labels(template: Any) -> dict[str, str]:
    return str_map(as_dict(as_dict(template).get("metadata")).get("labels"))
