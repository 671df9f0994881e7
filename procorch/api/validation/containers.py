"""Containers: names, the command procorch needs, ports, env, envFrom, volume mounts, probes,
lifecycle hooks and resources.

Mirrors Kubernetes' ``validateContainers``/``validateInitContainers`` and what they call.
Two procorch differences: ``command`` is required (a container is a process, and ``image``
is accepted and ignored, so it is not required either).
Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import (
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
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
    not_found,
    present,
)
from procorch.api.validation.meta import name_is_dns_subdomain, validate_dns1123_label
from procorch.api.validation.probes import validate_lifecycle, validate_probe
from procorch.api.validation.resources import validate_requirements

COMMAND_REQUIRED = (
    "procorch runs processes, not images: give the container a command (image is ignored)"
)
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_ENV_FIELD_PATHS = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
_CONVERTIBLE_FIELD_LABELS = {
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
    "spec.host",
}
_RESOURCE_FIELD_PATHS = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
]
_CPU_DIVISORS = {"1m", "1"}
_BYTE_DIVISORS = {
    "1",
    "1k",
    "1M",
    "1G",
    "1T",
    "1P",
    "1E",
    "1Ki",
    "1Mi",
    "1Gi",
    "1Ti",
    "1Pi",
    "1Ei",
}
_BYTE_DIVISOR_LIST = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"


def split_subscripted(path: str) -> tuple[str, str] | None:
    """``metadata.labels['app']`` -> (``metadata.labels``, ``app``)."""
    if not path.endswith("']"):
        return None
    head, sep, subscript = path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, subscript


def validate_object_field_selector(
    ref: dict[str, Any], expressions: list[str], path: str
) -> Causes:
    api_version = as_str(ref.get("apiVersion"))
    field_path = as_str(ref.get("fieldPath"))
    if not api_version:
        return [required(child(path, "apiVersion"))]
    if not field_path:
        return [required(child(path, "fieldPath"))]
    problem = ""
    split = split_subscripted(field_path)
    if api_version != "v1":
        problem = f"unsupported pod version: {api_version}"
    elif split is not None and split[0] not in ("metadata.annotations", "metadata.labels"):
        problem = f"field label does not support subscript: {field_path}"
    elif split is None and field_path not in _CONVERTIBLE_FIELD_LABELS:
        problem = f"field label not supported: {field_path}"
    if problem:
        return [
            invalid(child(path, "fieldPath"), field_path, f"error converting fieldPath: {problem}")
        ]
    if split is not None:
        head, subscript = split
        name = subscript.lower() if head == "metadata.annotations" else subscript
        return [invalid(path, name, msg) for msg in formats.is_qualified_name(name)]
    internal = "spec.nodeName" if field_path == "spec.host" else field_path
    if internal not in expressions:
        return [not_supported(child(path, "fieldPath"), internal, expressions)]
    return []


def validate_resource_field_selector(ref: dict[str, Any], path: str, *, volume: bool) -> Causes:
    causes: Causes = []
    resource = as_str(ref.get("resource"))
    if volume and not as_str(ref.get("containerName")):
        causes.append(required(child(path, "containerName")))
    elif not resource:
        causes.append(required(child(path, "resource")))
    elif resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(
        ("requests.hugepages-", "limits.hugepages-")
    ):
        causes.append(not_supported(child(path, "resource"), resource, _RESOURCE_FIELD_PATHS))
    divisor = ref.get("divisor")
    if divisor not in (None, "", 0, "0"):
        text = str(divisor)
        if resource in ("limits.cpu", "requests.cpu") and text not in _CPU_DIVISORS:
            causes.append(
                invalid(
                    child(path, "divisor"),
                    resource,
                    "only divisor's values 1m and 1 are supported with the cpu resource",
                )
            )
        elif resource in ("limits.memory", "requests.memory") and text not in _BYTE_DIVISORS:
            causes.append(
                invalid(
                    child(path, "divisor"),
                    resource,
                    f"only divisor's values {_BYTE_DIVISOR_LIST} are supported "
                    "with the memory resource",
                )
            )
    return causes


def _key_selector(ref: dict[str, Any], path: str) -> Causes:
    name = as_str(ref.get("name"))
    causes = [invalid(child(path, "name"), name, msg) for msg in name_is_dns_subdomain(name, False)]
    ref_key = as_str(ref.get("key"))
    if not ref_key:
        causes.append(required(child(path, "key")))
    else:
        causes += [
            invalid(child(path, "key"), ref_key, msg) for msg in formats.is_config_map_key(ref_key)
        ]
    return causes


def validate_env(env: Any, path: str) -> Causes:
    causes: Causes = []
    for i, var in items(env):
        var_path = index(path, i)
        name = as_str(var.get("name"))
        if not name:
            causes.append(required(child(var_path, "name")))
        else:
            causes += [
                invalid(child(var_path, "name"), name, msg)
                for msg in formats.is_relaxed_env_var_name(name)
            ]
        if not present(var, "valueFrom"):
            continue
        source = as_dict(var.get("valueFrom"))
        source_path = child(var_path, "valueFrom")
        count = 0
        if present(source, "fieldRef"):
            count += 1
            causes += validate_object_field_selector(
                as_dict(source["fieldRef"]), _ENV_FIELD_PATHS, child(source_path, "fieldRef")
            )
        if present(source, "resourceFieldRef"):
            count += 1
            causes += validate_resource_field_selector(
                as_dict(source["resourceFieldRef"]),
                child(source_path, "resourceFieldRef"),
                volume=False,
            )
        if present(source, "configMapKeyRef"):
            count += 1
            causes += _key_selector(
                as_dict(source["configMapKeyRef"]), child(source_path, "configMapKeyRef")
            )
        if present(source, "secretKeyRef"):
            count += 1
            causes += _key_selector(
                as_dict(source["secretKeyRef"]), child(source_path, "secretKeyRef")
            )
        if count == 0:
            causes.append(
                invalid(
                    source_path,
                    "",
                    "must specify one of: `fieldRef`, "
                    "`resourceFieldRef`, `configMapKeyRef` or "
                    "`secretKeyRef`",
                )
            )
        elif as_str(var.get("value")):
            causes.append(
                invalid(source_path, "", "may not be specified when `value` is not empty")
            )
        elif count > 1:
            causes.append(
                invalid(source_path, "", "may not have more than one field specified at a time")
            )
    return causes


def validate_env_from(env_from: Any, path: str) -> Causes:
    causes: Causes = []
    for i, source in items(env_from):
        source_path = index(path, i)
        prefix = as_str(source.get("prefix"))
        if prefix:
            causes += [
                invalid(child(source_path, "prefix"), prefix, msg)
                for msg in formats.is_relaxed_env_var_name(prefix)
            ]
        count = 0
        for field in ("configMapRef", "secretRef"):
            if not present(source, field):
                continue
            count += 1
            name = as_str(as_dict(source[field]).get("name"))
            if not name:
                causes.append(required(child(source_path, field, "name")))
            else:
                causes += [
                    invalid(child(source_path, field, "name"), name, msg)
                    for msg in name_is_dns_subdomain(name, True)
                ]
        if count == 0:
            causes.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    return causes


def validate_ports(ports: Any, path: str) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    for i, port in items(ports):
        port_path = index(path, i)
        name = as_str(port.get("name"))
        if name:
            msgs = formats.is_valid_port_name(name)
            if msgs:
                causes += [invalid(child(port_path, "name"), name, msg) for msg in msgs]
            elif name in names:
                causes.append(duplicate(child(port_path, "name"), name))
            else:
                names.add(name)
        number = as_int(port.get("containerPort")) or 0
        if number == 0:
            causes.append(required(child(port_path, "containerPort")))
        else:
            causes += [
                invalid(child(port_path, "containerPort"), number, msg)
                for msg in formats.is_valid_port_num(number)
            ]
        host_port = as_int(port.get("hostPort")) or 0
        if host_port:
            causes += [
                invalid(child(port_path, "hostPort"), host_port, msg)
                for msg in formats.is_valid_port_num(host_port)
            ]
        protocol = as_str(port.get("protocol"))
        if not protocol:
            causes.append(required(child(port_path, "protocol")))
        elif protocol not in _PROTOCOLS:
            causes.append(not_supported(child(port_path, "protocol"), protocol, _PROTOCOLS))
    return causes


def host_port_conflicts(containers: list[dict[str, Any]], path: str) -> Causes:
    seen: set[str] = set()
    causes: Causes = []
    for ci, ctr in enumerate(containers):
        for pi, port in items(ctr.get("ports")):
            host_port = as_int(port.get("hostPort")) or 0
            if not host_port:
                continue
            tag = f"{as_str(port.get('protocol'))}/{as_str(port.get('hostIP'))}/{host_port}"
            if tag in seen:
                causes.append(
                    duplicate(child(index(child(index(path, ci), "ports"), pi), "hostPort"), tag)
                )
            seen.add(tag)
    return causes


def _relative_path(value: str, path: str) -> Causes:
    causes: Causes = []
    if value.startswith("/"):
        causes.append(invalid(path, value, "must be a relative path"))
    if ".." in value.replace("\\", "/").split("/"):
        causes.append(invalid(path, value, "must not contain '..'"))
    return causes


def validate_volume_mounts(mounts: Any, volumes: set[str], path: str) -> Causes:
    causes: Causes = []
    mount_points: set[str] = set()
    for i, mount in items(mounts):
        mount_path = index(path, i)
        name = as_str(mount.get("name"))
        if not name:
            causes.append(required(child(mount_path, "name")))
        if name not in volumes:
            causes.append(not_found(child(mount_path, "name"), name))
        where = as_str(mount.get("mountPath"))
        if not where:
            causes.append(required(child(mount_path, "mountPath")))
        if where in mount_points:
            causes.append(invalid(child(mount_path, "mountPath"), where, "must be unique"))
        mount_points.add(where)
        sub_path = as_str(mount.get("subPath"))
        sub_expr = as_str(mount.get("subPathExpr"))
        # Kubernetes reports these two without the mount's index; kept for fidelity.
        if sub_path:
            causes += _relative_path(sub_path, child(path, "subPath"))
        if sub_expr:
            if sub_path:
                causes.append(
                    invalid(
                        child(mount_path, "subPathExpr"),
                        sub_expr,
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            causes += _relative_path(sub_expr, child(path, "subPathExpr"))
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            supported = ["Bidirectional", "HostToContainer", "None"]
            if propagation not in supported:
                causes.append(
                    not_supported(child(path, "mountPropagation"), propagation, supported)
                )
            elif propagation == "Bidirectional":
                causes.append(
                    forbidden(
                        child(path, "mountPropagation"),
                        "Bidirectional mount propagation is available only to "
                        "privileged containers",
                    )
                )
        recursive = mount.get("recursiveReadOnly")
        if recursive is not None:
            rro_path = child(path, "recursiveReadOnly")
            if recursive in ("Enabled", "IfPossible"):
                if mount.get("readOnly") is not True:
                    causes.append(
                        forbidden(rro_path, "may only be specified when readOnly is true")
                    )
                if propagation not in (None, "None"):
                    causes.append(
                        forbidden(
                            rro_path,
                            "may only be specified when mountPropagation is None or not specified",
                        )
                    )
            elif recursive != "Disabled":
                causes.append(
                    not_supported(rro_path, recursive, ["Disabled", "Enabled", "IfPossible"])
                )
    return causes


def validate_container_common(ctr: dict[str, Any], volumes: set[str], path: str) -> Causes:
    causes: Causes = []
    name = as_str(ctr.get("name"))
    if not name:
        causes.append(required(child(path, "name")))
    else:
        causes += validate_dns1123_label(name, child(path, "name"))
    if not as_list(ctr.get("command")):
        causes.append(required(child(path, "command"), COMMAND_REQUIRED))
    policy = as_str(ctr.get("terminationMessagePolicy"))
    if not policy:
        causes.append(required(child(path, "terminationMessagePolicy")))
    elif policy not in ("File", "FallbackToLogsOnError"):
        causes.append(
            not_supported(
                child(path, "terminationMessagePolicy"), policy, ["File", "FallbackToLogsOnError"]
            )
        )
    causes += validate_ports(ctr.get("ports"), child(path, "ports"))
    causes += validate_env(ctr.get("env"), child(path, "env"))
    causes += validate_env_from(ctr.get("envFrom"), child(path, "envFrom"))
    causes += validate_volume_mounts(ctr.get("volumeMounts"), volumes, child(path, "volumeMounts"))
    pull = as_str(ctr.get("imagePullPolicy"))
    if not pull:
        causes.append(required(child(path, "imagePullPolicy")))
    elif pull not in ("Always", "IfNotPresent", "Never"):
        causes.append(
            not_supported(child(path, "imagePullPolicy"), pull, ["Always", "IfNotPresent", "Never"])
        )
    causes += validate_requirements(ctr.get("resources"), child(path, "resources"))
    return causes


def _probes_and_hooks(ctr: dict[str, Any], grace: int | None, path: str) -> Causes:
    causes: Causes = []
    if present(ctr, "lifecycle"):
        causes += validate_lifecycle(ctr["lifecycle"], grace, child(path, "lifecycle"))
    for which in ("liveness", "readiness", "startup"):
        causes += validate_probe(
            ctr.get(f"{which}Probe"), which, grace, child(path, f"{which}Probe")
        )
    return causes


def validate_containers(containers: Any, volumes: set[str], grace: int | None, path: str) -> Causes:
    containers = as_list(containers)
    if not containers:
        return [required(path)]
    causes: Causes = []
    names: set[str] = set()
    ctrs = [as_dict(c) for c in containers]
    for i, ctr in enumerate(ctrs):
        ctr_path = index(path, i)
        causes += validate_container_common(ctr, volumes, ctr_path)
        name = as_str(ctr.get("name"))
        if name in names:
            causes.append(duplicate(child(ctr_path, "name"), name))
        names.add(name)
        causes += _probes_and_hooks(ctr, grace, ctr_path)
        if present(ctr, "restartPolicy"):
            causes.append(
                forbidden(
                    child(ctr_path, "restartPolicy"), "may not be set for non-init containers"
                )
            )
    causes += host_port_conflicts(ctrs, path)
    return causes


def validate_init_containers(
    init_containers: Any, containers: Any, volumes: set[str], grace: int | None, path: str
) -> Causes:
    causes: Causes = []
    names = {as_str(as_dict(c).get("name")) for c in as_list(containers)}
    for i, ctr in items(init_containers):
        ctr_path = index(path, i)
        causes += validate_container_common(ctr, volumes, ctr_path)
        restart_always = False
        if present(ctr, "restartPolicy"):
            policy = ctr["restartPolicy"]
            if policy != "Always":
                causes.append(not_supported(child(ctr_path, "restartPolicy"), policy, ["Always"]))
            restart_always = policy == "Always"
        name = as_str(ctr.get("name"))
        if name in names:
            causes.append(duplicate(child(ctr_path, "name"), name))
        elif name:
            names.add(name)
        causes += host_port_conflicts([ctr], path)
        if restart_always:
            causes += _probes_and_hooks(ctr, grace, ctr_path)
        else:
            for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if present(ctr, field):
                    causes.append(
                        forbidden(
                            child(ctr_path, field),
                            "may not be set for init containers without restartPolicy=Always",
                        )
                    )
    return causes
