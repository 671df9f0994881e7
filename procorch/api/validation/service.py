"""Service (core/v1): type, ports, cluster IPs, IP families, session affinity, traffic
policies; on update, allocated cluster IPs may not change.

Mirrors Kubernetes' ``ValidateService``/``ValidateServiceUpdate``. The node-port range
check, which Kubernetes makes while allocating, is made here because procorch validates
before it allocates. Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import duplicate, forbidden, invalid, not_supported, required
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
    name_is_dns1035_label,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_labels,
    validate_object_meta,
    validate_qualified_name,
)
from procorch.api.validation.probes import validate_port_num_or_name

NODE_PORT_RANGE = (30000, 32767)
_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_KUBELET_PORT = 10250
_MAX_AFFINITY_SECONDS = 86400


def _is_headless(spec: dict[str, Any]) -> bool:
    ips = as_list(spec.get("clusterIPs"))
    return len(ips) == 1 and ips[0] == "None"


def _externally_accessible(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(as_list(spec.get("externalIPs")))
    )


def _validate_port(
    port: dict[str, Any], *, require_name: bool, names: set[str], path: str
) -> Causes:
    causes: Causes = []
    name = as_str(port.get("name"))
    if require_name and not name:
        causes.append(required(child(path, "name")))
    elif name:
        causes += validate_dns1123_label(name, child(path, "name"))
        if name in names:
            causes.append(duplicate(child(path, "name"), name))
        names.add(name)
    number = as_int(port.get("port")) or 0
    causes += [
        invalid(child(path, "port"), number, msg) for msg in formats.is_valid_port_num(number)
    ]
    protocol = as_str(port.get("protocol"))
    if not protocol:
        causes.append(required(child(path, "protocol")))
    elif protocol not in _PROTOCOLS:
        causes.append(not_supported(child(path, "protocol"), protocol, _PROTOCOLS))
    causes += validate_port_num_or_name(port.get("targetPort"), child(path, "targetPort"))
    if present(port, "appProtocol"):
        causes += validate_qualified_name(as_str(port["appProtocol"]), child(path, "appProtocol"))
    return causes


def _cluster_ips(spec: dict[str, Any]) -> Causes:
    if spec.get("type") == "ExternalName":
        return []
    causes: Causes = []
    cluster_ip = as_str(spec.get("clusterIP"))
    cluster_ips = [as_str(ip) for ip in as_list(spec.get("clusterIPs"))]
    if cluster_ip:
        if not cluster_ips:
            causes.append(required("spec.clusterIPs"))
        elif cluster_ips[0] != cluster_ip:
            causes.append(
                invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`")
            )
    elif cluster_ips:
        causes.append(
            invalid(
                "spec.clusterIPs", cluster_ips, "must be empty when `clusterIP` is not specified"
            )
        )
    families = as_list(spec.get("ipFamilies"))
    seen: list[Any] = []
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            causes.append(not_supported(index("spec.ipFamilies", i), family, ["IPv4", "IPv6"]))
        if family in seen:
            causes.append(duplicate(index("spec.ipFamilies", i), family))
        seen.append(family)
    policy = spec.get("ipFamilyPolicy")
    supported = ["PreferDualStack", "RequireDualStack", "SingleStack"]
    if policy is not None and policy not in supported:
        causes.append(not_supported("spec.ipFamilyPolicy", policy, supported))
    bad_ips = False
    for i, ip in enumerate(cluster_ips):
        if i == 0 and ip == "None":
            if len(cluster_ips) > 1:
                bad_ips = True
                causes.append(
                    invalid(
                        "spec.clusterIPs", cluster_ips, "'None' must be the first and only value"
                    )
                )
            continue
        msgs = formats.is_valid_ip(ip)
        bad_ips = bad_ips or bool(msgs)
        causes += [invalid(index("spec.clusterIPs", i), ip, msg) for msg in msgs]
    if len(cluster_ips) > 2:
        causes.append(invalid("spec.clusterIPs", cluster_ips, "may only hold up to 2 values"))
    if bad_ips:
        return causes
    if len(cluster_ips) > 1:
        addresses = [formats.parse_ip(ip) for ip in cluster_ips]
        versions = {a.version for a in addresses if a is not None}
        if len(versions) != len(cluster_ips):
            causes.append(
                invalid(
                    "spec.clusterIPs",
                    cluster_ips,
                    "may specify no more than one IP for each IP family",
                )
            )
    if not _is_headless(spec):
        for i, (ip, family) in enumerate(zip(cluster_ips, families)):
            parsed = formats.parse_ip(ip)
            is_v6 = parsed is not None and parsed.version == 6
            if family == "IPv4" and is_v6:
                causes.append(
                    invalid(
                        index("spec.clusterIPs", i),
                        ip,
                        f"expected an IPv4 value as indicated by `ipFamilies[{i}]`",
                    )
                )
            if family == "IPv6" and not is_v6:
                causes.append(
                    invalid(
                        index("spec.clusterIPs", i),
                        ip,
                        f"expected an IPv6 value as indicated by `ipFamilies[{i}]`",
                    )
                )
    return causes


def validate_service(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    """Create and update validation; on update, the cluster IPs may not change."""
    if old is None:
        return _validate_service(obj)
    spec = dict(as_dict(obj.get("spec")))
    if "clusterIPs" in spec or spec.get("clusterIP"):
        spec["clusterIPs"] = _effective_cluster_ips(spec, as_dict(old.get("spec")))
    normalized = dict(obj, spec=spec)
    return _validate_service(normalized) + _validate_service_update(normalized, old)


def _validate_service(obj: dict[str, Any]) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns1035_label
    )
    spec = as_dict(obj.get("spec"))
    kind = spec.get("type")
    ports = [p for _, p in items(spec.get("ports"))]
    headless = _is_headless(spec)
    if not ports and not headless and kind != "ExternalName":
        causes.append(required("spec.ports"))
    if kind == "LoadBalancer":
        for i, port in enumerate(ports):
            if as_int(port.get("port")) == _KUBELET_PORT:
                causes.append(
                    invalid(
                        index("spec.ports", i),
                        _KUBELET_PORT,
                        f"may not expose port {_KUBELET_PORT} externally since "
                        "it is used by kubelet",
                    )
                )
    if kind in ("LoadBalancer", "NodePort") and headless:
        causes.append(
            invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services")
        )
    if kind == "ExternalName":
        if as_list(spec.get("clusterIPs")):
            causes.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if as_list(spec.get("ipFamilies")):
            causes.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if present(spec, "ipFamilyPolicy"):
            causes.append(
                forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
            )
        cname = as_str(spec.get("externalName")).removesuffix(".")
        if cname:
            causes += validate_dns1123_subdomain(cname, "spec.externalName")
        else:
            causes.append(required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes += _validate_port(
            port, require_name=len(ports) > 1, names=names, path=index("spec.ports", i)
        )
    if present(spec, "selector"):
        causes += validate_labels(spec["selector"], "spec.selector")
    affinity = as_str(spec.get("sessionAffinity"))
    if not affinity:
        causes.append(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        causes.append(not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    if affinity == "ClientIP":
        causes += _client_ip_config(spec.get("sessionAffinityConfig"))
    elif affinity == "None" and present(spec, "sessionAffinityConfig"):
        causes.append(
            forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
        )
    causes += _cluster_ips(spec)
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        causes += [
            invalid(index("spec.externalIPs", i), ip, msg)
            for msg in formats.is_valid_ip(as_str(ip))
        ]
    if not kind:
        causes.append(required("spec.type"))
    elif kind not in _TYPES:
        causes.append(not_supported("spec.type", kind, _TYPES))
    causes += _node_ports(spec, ports)
    seen_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        tag = (as_str(port.get("protocol")), as_int(port.get("port")) or 0)
        if tag in seen_ports:
            causes.append(duplicate(index("spec.ports", i), {"port": tag[1], "protocol": tag[0]}))
        seen_ports.add(tag)
    if present(spec, "loadBalancerSourceRanges") and kind != "LoadBalancer":
        causes.append(
            forbidden(
                "spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"
            )
        )
    for i, cidr in enumerate(as_list(spec.get("loadBalancerSourceRanges"))):
        causes += [
            invalid(index("spec.LoadBalancerSourceRanges", i), cidr, msg)
            for msg in formats.is_valid_cidr(as_str(cidr).strip())
        ]
    if present(spec, "allocateLoadBalancerNodePorts") and kind != "LoadBalancer":
        causes.append(
            forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    if kind == "LoadBalancer" and not present(spec, "allocateLoadBalancerNodePorts"):
        causes.append(required("allocateLoadBalancerNodePorts"))
    causes += _traffic_policies(spec)
    return causes


def _client_ip_config(config: Any) -> Causes:
    path = "spec.sessionAffinityConfig"
    detail = "when session affinity type is ClientIP"
    if config is None:
        return [required(path, detail)]
    client_ip = as_dict(config).get("clientIP")
    if client_ip is None:
        return [required(child(path, "clientIP"), detail)]
    timeout = as_dict(client_ip).get("timeoutSeconds")
    if timeout is None:
        return [required(child(path, "clientIP", "timeoutSeconds"), detail)]
    number = as_int(timeout)
    if number is None or not 0 < number <= _MAX_AFFINITY_SECONDS:
        return [
            invalid(
                child(path, "clientIP", "timeoutSeconds"),
                timeout,
                f"must be greater than 0 and less than {_MAX_AFFINITY_SECONDS}",
            )
        ]
    return []


def _node_ports(spec: dict[str, Any], ports: list[dict[str, Any]]) -> Causes:
    causes: Causes = []
    seen: set[tuple[str, int]] = set()
    low, high = NODE_PORT_RANGE
    for i, port in enumerate(ports):
        node_port = as_int(port.get("nodePort")) or 0
        if not node_port:
            continue
        path = child(index("spec.ports", i), "nodePort")
        if spec.get("type") == "ClusterIP":
            causes.append(forbidden(path, "may not be used when `type` is 'ClusterIP'"))
        elif spec.get("type") in ("NodePort", "LoadBalancer") and not low <= node_port <= high:
            causes.append(
                invalid(
                    path,
                    node_port,
                    "provided port is not in the valid range. The range of valid "
                    f"ports is {low}-{high}",
                )
            )
        tag = (as_str(port.get("protocol")), node_port)
        if tag in seen:
            causes.append(duplicate(path, node_port))
        seen.add(tag)
    return causes


def _traffic_policies(spec: dict[str, Any]) -> Causes:
    causes: Causes = []
    external = as_str(spec.get("externalTrafficPolicy"))
    if not _externally_accessible(spec):
        if external:
            causes.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    external,
                    "may only be set for externally-accessible services",
                )
            )
    elif not external:
        causes.append(required("spec.externalTrafficPolicy"))
    elif external not in ("Cluster", "Local"):
        causes.append(not_supported("spec.externalTrafficPolicy", external, ["Cluster", "Local"]))
    health = as_int(spec.get("healthCheckNodePort")) or 0
    needs_health = spec.get("type") == "LoadBalancer" and external == "Local"
    if not needs_health and health:
        causes.append(
            invalid(
                "spec.healthCheckNodePort",
                health,
                "may only be set when `type` is 'LoadBalancer' and "
                "`externalTrafficPolicy` is 'Local'",
            )
        )
    elif needs_health and health:
        causes += [
            invalid("spec.healthCheckNodePort", health, msg)
            for msg in formats.is_valid_port_num(health)
        ]
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("NodePort", "LoadBalancer", "ClusterIP"):
        causes.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in ("Cluster", "Local"):
        causes.append(not_supported("spec.internalTrafficPolicy", internal, ["Cluster", "Local"]))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        causes.append(not_supported("spec.trafficDistribution", distribution, ["PreferClose"]))
    return causes


def _effective_cluster_ips(new: dict[str, Any], old: dict[str, Any]) -> list[Any]:
    """Kubernetes' update strategy makes ``clusterIPs[0]`` follow a changed ``clusterIP``
    before validating; do the same without touching the object."""
    new_ips = list(as_list(new.get("clusterIPs")))
    if (
        new.get("clusterIP") != old.get("clusterIP")
        and new_ips
        and new_ips == as_list(old.get("clusterIPs"))
        and new.get("clusterIP")
    ):
        new_ips[0] = new.get("clusterIP")
    return new_ips


def _validate_service_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    new_spec = as_dict(new.get("spec"))
    old_spec = as_dict(old.get("spec"))
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    causes: Causes = []
    new_ips = _effective_cluster_ips(new_spec, old_spec)
    old_ips = as_list(old_spec.get("clusterIPs"))
    if _is_headless(old_spec) and _is_headless({"clusterIPs": new_ips}):
        return causes
    if len(old_ips) == len(new_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                causes.append(
                    invalid(index("spec.clusterIPs", i), new_ips, "may not change once set")
                )
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            causes.append(
                invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset")
            )
        elif new_ips[0] != old_ips[0]:
            causes.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
        if len(new_ips) == 1 and new_spec.get("ipFamilyPolicy") != "SingleStack":
            causes.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    new_spec.get("ipFamilyPolicy"),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                )
            )
    elif old_ips and new_ips[0] != old_ips[0]:
        causes.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    old_families = as_list(old_spec.get("ipFamilies"))
    new_families = as_list(new_spec.get("ipFamilies"))
    if (
        _is_headless(old_spec) == _is_headless({"clusterIPs": new_ips})
        and not _is_headless(old_spec)
        and len(old_families) == len(new_families)
        and old_families != new_families
    ):
        causes.append(invalid("spec.ipFamilies[0]", new_families, "may not change once set"))
    return causes
