"""Ingress and IngressClass (networking.k8s.io/v1): hosts, paths and path types, backends,
TLS, class parameters.

Mirrors Kubernetes' networking validation. Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import forbidden, invalid, not_supported, required, too_long
from procorch.api.validation import formats
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    immutable,
    index,
    items,
    present,
)
from procorch.api.validation.meta import (
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    validate_object_meta,
)

_PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_BAD_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_BAD_SUFFIXES = ("/..", "/.")
_MAX_CONTROLLER_LEN = 250


def _typed_reference(ref: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    if present(ref, "apiGroup"):
        group = as_str(ref["apiGroup"])
        causes += [
            invalid(child(path, "apiGroup"), group, msg)
            for msg in formats.is_dns1123_subdomain(group)
        ]
    for field in ("kind", "name"):
        value = as_str(ref.get(field))
        if not value:
            causes.append(required(child(path, field), f"{field} is required"))
        else:
            causes += [
                invalid(child(path, field), value, msg)
                for msg in formats.is_valid_path_segment_name(value)
            ]
    return causes


def _backend(backend: dict[str, Any], path: str) -> Causes:
    has_resource = present(backend, "resource")
    has_service = present(backend, "service")
    if has_resource and has_service:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if has_resource:
        return _typed_reference(as_dict(backend["resource"]), child(path, "resource"))
    if not has_service:
        return [invalid(path, "", "resource or service backend is required")]
    service = as_dict(backend["service"])
    causes: Causes = []
    name = as_str(service.get("name"))
    if not name:
        causes.append(required(child(path, "service", "name")))
    else:
        causes += [
            invalid(child(path, "service", "name"), name, msg)
            for msg in name_is_dns1035_label(name, False)
        ]
    port = as_dict(service.get("port"))
    port_name = as_str(port.get("name"))
    port_number = as_int(port.get("number")) or 0
    if port_name and port_number:
        causes.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        causes += [
            invalid(child(path, "service", "port", "name"), port_name, msg)
            for msg in formats.is_valid_port_name(port_name)
        ]
    elif port_number:
        causes += [
            invalid(child(path, "service", "port", "number"), port_number, msg)
            for msg in formats.is_valid_port_num(port_number)
        ]
    else:
        causes.append(required(path, "port name or number is required"))
    return causes


def _http_path(entry: dict[str, Any], path: str) -> Causes:
    path_type = entry.get("pathType")
    if path_type is None:
        return [required(child(path, "pathType"), "pathType must be specified")]
    causes: Causes = []
    value = as_str(entry.get("path"))
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(invalid(child(path, "path"), value, "must be an absolute path"))
        if value:
            causes += [
                invalid(child(path, "path"), value, f"must not contain '{seq}'")
                for seq in _BAD_SEQUENCES
                if seq in value
            ]
            causes += [
                invalid(child(path, "path"), value, f"cannot end with '{suffix}'")
                for suffix in _BAD_SUFFIXES
                if value.endswith(suffix)
            ]
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            causes.append(invalid(child(path, "path"), value, "must be an absolute path"))
    else:
        causes.append(not_supported(child(path, "pathType"), path_type, _PATH_TYPES))
    causes += _backend(as_dict(entry.get("backend")), child(path, "backend"))
    return causes


def _host(host: str, path: str) -> Causes:
    causes: Causes = []
    if formats.parse_ip(host) is not None:
        causes.append(invalid(path, host, "must be a DNS name, not an IP address"))
    if "*" in host:
        causes += [invalid(path, host, msg) for msg in formats.is_wildcard_dns1123_subdomain(host)]
    else:
        causes += [invalid(path, host, msg) for msg in formats.is_dns1123_subdomain(host)]
    return causes


def validate_ingress(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    rules = as_list(spec.get("rules"))
    if not rules and not present(spec, "defaultBackend"):
        causes.append(
            invalid("spec", rules, "either `defaultBackend` or `rules` must be specified")
        )
    if present(spec, "defaultBackend"):
        causes += _backend(as_dict(spec["defaultBackend"]), "spec.defaultBackend")
    for i, rule in items(rules):
        rule_path = index("spec.rules", i)
        host = as_str(rule.get("host"))
        if host:
            causes += _host(host, child(rule_path, "host"))
        if present(rule, "http"):
            http = as_dict(rule["http"])
            http_path = child(rule_path, "http")
            paths = as_list(http.get("paths"))
            if not paths:
                causes.append(required(child(http_path, "paths")))
            for j, entry in items(paths):
                causes += _http_path(entry, index(child(http_path, "paths"), j))
    for i, tls in items(spec.get("tls")):
        tls_path = index("spec.tls", i)
        for j, host in enumerate(as_list(tls.get("hosts"))):
            host = as_str(host)
            msgs = (
                formats.is_wildcard_dns1123_subdomain(host)
                if "*" in host
                else formats.is_dns1123_subdomain(host)
            )
            causes += [invalid(index(child(tls_path, "hosts"), j), host, msg) for msg in msgs]
        secret = as_str(tls.get("secretName"))
        if secret:
            causes += [
                invalid(child(tls_path, "secretName"), secret, msg)
                for msg in name_is_dns_subdomain(secret, False)
            ]
    if present(spec, "ingressClassName"):
        class_name = as_str(spec["ingressClassName"])
        causes += [
            invalid("spec.ingressClassName", class_name, msg)
            for msg in name_is_dns_subdomain(class_name, False)
        ]
    annotation = as_dict(as_dict(obj.get("metadata")).get("annotations")).get(
        "kubernetes.io/ingress.class"
    )
    if (
        old is None
        and annotation is not None
        and present(spec, "ingressClassName")
        and annotation != spec["ingressClassName"]
    ):
        causes.append(
            invalid(
                "annotations.kubernetes.io/ingress.class",
                annotation,
                "must match `ingressClassName` when both are specified",
            )
        )
    return causes


def validate_ingress_class(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=False, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    controller = as_str(spec.get("controller"))
    if len(controller) > _MAX_CONTROLLER_LEN:
        causes.append(too_long("spec.controller", "", _MAX_CONTROLLER_LEN))
    if not controller:
        causes.append(required("spec.controller"))
    else:
        causes += [
            invalid("spec.controller", value, msg)
            for value, msg in formats.domain_prefixed_path_errors(controller)
        ]
    if present(spec, "parameters"):
        params = as_dict(spec["parameters"])
        path = "spec.parameters"
        causes += _typed_reference(params, path)
        scope = params.get("scope")
        if scope is None:
            causes.append(required(child(path, "scope")))
        elif scope not in ("Cluster", "Namespace"):
            causes.append(not_supported(child(path, "scope"), scope, ["Cluster", "Namespace"]))
        elif scope == "Namespace":
            if not present(params, "namespace"):
                causes.append(
                    required(child(path, "namespace"), "`parameters.scope` is set to 'Namespace'")
                )
            else:
                namespace = as_str(params["namespace"])
                causes += [
                    invalid(child(path, "namespace"), namespace, msg)
                    for msg in name_is_dns_label(namespace, False)
                ]
        elif present(params, "namespace"):
            causes.append(
                forbidden(child(path, "namespace"), "`parameters.scope` is set to 'Cluster'")
            )
    if old is not None:
        causes += immutable(
            "spec.controller", spec.get("controller"), as_dict(old.get("spec")).get("controller")
        )
    return causes
