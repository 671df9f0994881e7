"""The smaller core and infrastructure kinds: Namespace, Node, Endpoints, EndpointSlice,
Event, ServiceAccount, PersistentVolumeClaim and Lease.

Mirrors the matching Kubernetes validators. One deliberate difference: Endpoints and
EndpointSlices may hold loopback addresses, because procorch's pod IPs live in 127.0.0.0/8
(Kubernetes refuses them as "may not be in the loopback range").
Pure data.
"""

from __future__ import annotations

from dataclasses import replace
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
    key,
    present,
    too_many,
)
from procorch.api.validation.meta import (
    name_is_dns_label,
    name_is_dns_subdomain,
    validate_dns1123_label,
    validate_label_name,
    validate_label_selector,
    validate_labels,
    validate_object_meta,
    validate_qualified_name,
)
from procorch.api.validation.resources import (
    quantity,
    shown,
    validate_resource_list,
)

_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}
_TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def validate_namespace(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(obj.get("metadata"), namespaced=False, name_fn=name_is_dns_label)
    for finalizer in as_list(as_dict(obj.get("spec")).get("finalizers")):
        name = as_str(finalizer)
        causes += validate_qualified_name(name, "spec.finalizers")
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            causes.append(
                invalid(
                    "spec.finalizers",
                    name,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return causes


def validate_node(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=False, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    seen: set[tuple[str, str]] = set()
    # Kubernetes reports taints under metadata.taints; kept for fidelity.
    for i, taint in items(spec.get("taints")):
        taint_path = index("metadata.taints", i)
        taint_key = as_str(taint.get("key"))
        causes += validate_label_name(taint_key, child(taint_path, "key"))
        msgs = formats.is_label_value(as_str(taint.get("value")))
        if msgs:
            causes.append(invalid(child(taint_path, "value"), taint.get("value"), ";".join(msgs)))
        effect = as_str(taint.get("effect"))
        if not effect:
            causes.append(required(child(taint_path, "effect")))
        elif effect not in _TAINT_EFFECTS:
            causes.append(not_supported(child(taint_path, "effect"), effect, _TAINT_EFFECTS))
        if (effect, taint_key) in seen:
            cause = duplicate(taint_path, taint)
            causes.append(
                replace(
                    cause, message=cause.message + ": taints must be unique by key and effect pair"
                )
            )
        seen.add((effect, taint_key))
    status = as_dict(obj.get("status"))
    for section in ("capacity", "allocatable"):
        causes += validate_resource_list(status.get(section), f"status.{section}", dotted=True)
    for i, cidr in enumerate(as_list(spec.get("podCIDRs"))):
        causes += [
            invalid(index("spec.podCIDRs", i), cidr, msg)
            for msg in formats.is_valid_cidr(as_str(cidr))
        ]
    if old is not None:
        old_cidrs = as_list(as_dict(old.get("spec")).get("podCIDRs"))
        new_cidrs = as_list(spec.get("podCIDRs"))
        if old_cidrs and new_cidrs != old_cidrs:
            causes.append(
                forbidden(
                    "spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'
                )
            )
    return causes


def _special_ip(ip: str, path: str) -> Causes:
    parsed = formats.parse_ip(ip)
    if parsed is None:
        return [invalid(path, ip, "must be a valid IP address")]
    causes: Causes = []
    if parsed.is_unspecified:
        causes.append(invalid(path, ip, f"may not be unspecified ({ip})"))
    if parsed.is_link_local:
        causes.append(
            invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        )
    if parsed.is_multicast and (
        (parsed.version == 4 and ip.startswith("224.0.0."))
        or (parsed.version == 6 and ip.lower().startswith("ff02:"))
    ):
        causes.append(
            invalid(
                path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
            )
        )
    return causes


def validate_endpoints(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    for i, subset in items(obj.get("subsets")):
        subset_path = index("subsets", i)
        if not as_list(subset.get("addresses")) and not as_list(subset.get("notReadyAddresses")):
            causes.append(required(subset_path, "must specify `addresses` or `notReadyAddresses`"))
        for field in ("addresses", "notReadyAddresses"):
            for j, address in items(subset.get(field)):
                address_path = index(child(subset_path, field), j)
                ip = as_str(address.get("ip"))
                msgs = formats.is_valid_ip(ip)
                causes += [invalid(child(address_path, "ip"), ip, msg) for msg in msgs]
                hostname = as_str(address.get("hostname"))
                if hostname:
                    causes += validate_dns1123_label(hostname, child(address_path, "hostname"))
                if present(address, "nodeName"):
                    node = as_str(address["nodeName"])
                    causes += [
                        invalid(child(address_path, "nodeName"), node, msg)
                        for msg in name_is_dns_subdomain(node, False)
                    ]
                if not msgs:
                    causes += _special_ip(ip, child(address_path, "ip"))
        ports = [p for _, p in items(subset.get("ports"))]
        for j, port in enumerate(ports):
            port_path = index(child(subset_path, "ports"), j)
            name = as_str(port.get("name"))
            if len(ports) > 1 and not name:
                causes.append(required(child(port_path, "name")))
            elif name:
                causes += validate_dns1123_label(name, child(port_path, "name"))
            number = as_int(port.get("port")) or 0
            causes += [
                invalid(child(port_path, "port"), number, msg)
                for msg in formats.is_valid_port_num(number)
            ]
            protocol = as_str(port.get("protocol"))
            if not protocol:
                causes.append(required(child(port_path, "protocol")))
            elif protocol not in _PROTOCOLS:
                causes.append(not_supported(child(port_path, "protocol"), protocol, _PROTOCOLS))
            if present(port, "appProtocol"):
                causes += validate_qualified_name(
                    as_str(port["appProtocol"]), child(port_path, "appProtocol")
                )
    return causes


def validate_endpoint_slice(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    address_type = as_str(obj.get("addressType"))
    supported = ["FQDN", "IPv4", "IPv6"]
    if old is not None:
        supported = ["FQDN", "IP", "IPv4", "IPv6"]
    if not address_type:
        causes.append(required("addressType"))
    elif address_type not in supported:
        causes.append(not_supported("addressType", address_type, supported))
    endpoints = as_list(obj.get("endpoints"))
    if len(endpoints) > 1000:
        causes.append(too_many("endpoints", len(endpoints), 1000))
    else:
        for i, endpoint in items(endpoints):
            ep_path = index("endpoints", i)
            addresses = as_list(endpoint.get("addresses"))
            address_path = child(ep_path, "addresses")
            if not addresses:
                causes.append(required(address_path, "must contain at least 1 address"))
            elif len(addresses) > 100:
                causes.append(too_many(address_path, len(addresses), 100))
            for j, address in enumerate(addresses):
                ip = as_str(address)
                path = index(address_path, j)
                if address_type == "IPv4":
                    msgs = formats.is_valid_ipv4(ip)
                elif address_type == "IPv6":
                    msgs = formats.is_valid_ipv6(ip)
                elif address_type == "FQDN":
                    msgs = formats.is_dns1123_subdomain(ip.removesuffix("."))
                else:
                    msgs = []
                causes += [invalid(path, ip, msg) for msg in msgs]
                if not msgs and address_type in ("IPv4", "IPv6"):
                    causes += _special_ip(ip, path)
            topology = endpoint.get("deprecatedTopology")
            causes += validate_labels(topology, child(ep_path, "deprecatedTopology"))
            if present(endpoint, "hostname"):
                causes += validate_dns1123_label(
                    as_str(endpoint["hostname"]), child(ep_path, "hostname")
                )
    ports = as_list(obj.get("ports"))
    if len(ports) > 100:
        causes.append(too_many("ports", len(ports), 100))
        return causes
    names: set[str] = set()
    for i, port in items(ports):
        port_path = index("ports", i)
        name = as_str(port.get("name"))
        if name:
            causes += validate_dns1123_label(name, child(port_path, "name"))
        if name in names:
            causes.append(duplicate(child(port_path, "name"), name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            causes.append(required(child(port_path, "protocol")))
        elif protocol not in _PROTOCOLS:
            causes.append(not_supported(child(port_path, "protocol"), protocol, _PROTOCOLS))
        if present(port, "appProtocol"):
            causes += validate_qualified_name(
                as_str(port["appProtocol"]), child(port_path, "appProtocol")
            )
    if old is not None and obj.get("addressType") != old.get("addressType"):
        causes.append(invalid("addressType", obj.get("addressType"), "field is immutable"))
    return causes


def validate_event(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    """core/v1 Events get Kubernetes' lenient "legacy" validation only."""
    meta = as_dict(obj.get("metadata"))
    causes: Causes = []
    if not as_str(meta.get("name")):
        causes.append(required("metadata.name", "name or generateName is required"))
    namespace = as_str(meta.get("namespace"))
    involved_ns = as_str(as_dict(obj.get("involvedObject")).get("namespace"))
    if not obj.get("eventTime"):
        if not involved_ns:
            if namespace not in ("", "default"):
                causes.append(
                    invalid(
                        "involvedObject.namespace", involved_ns, "does not match event.namespace"
                    )
                )
        elif namespace != involved_ns:
            causes.append(
                invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
            )
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            causes.append(
                invalid("involvedObject.namespace", involved_ns, "does not match event.namespace")
            )
        controller = as_str(obj.get("reportingComponent"))
        if not controller:
            causes.append(required("reportingComponent"))
        causes += validate_qualified_name(controller, "reportingComponent")
        for field, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
            value = as_str(obj.get(field))
            if not value:
                causes.append(required(field))
            if len(value) > limit:
                causes.append(invalid(field, "", f"can have at most {limit} characters"))
        if len(as_str(obj.get("message"))) > 1024:
            causes.append(invalid("message", "", "can have at most 1024 characters"))
    causes += [
        invalid("namespace", namespace, msg) for msg in formats.is_dns1123_subdomain(namespace)
    ]
    return causes


def validate_service_account(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    return validate_object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)


_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def validate_pvc(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    modes = as_list(spec.get("accessModes"))
    if not modes:
        causes.append(required("spec.accessModes", "at least 1 access mode is required"))
    if present(spec, "selector"):
        causes += validate_label_selector(spec["selector"], "spec.selector")
    for mode in modes:
        if mode not in _ACCESS_MODES:
            causes.append(not_supported("spec.accessModes", mode, _ACCESS_MODES))
    if "ReadWriteOncePod" in modes and any(
        m in _ACCESS_MODES and m != "ReadWriteOncePod" for m in modes
    ):
        causes.append(
            forbidden("spec.accessModes", "may not use ReadWriteOncePod with other access modes")
        )
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    # Kubernetes names this field spec.resources[storage]; kept for fidelity.
    storage_path = key("spec.resources", "storage")
    if "storage" not in requests:
        causes.append(required(storage_path))
    else:
        number, errs = quantity(storage_path, requests["storage"])
        causes += errs
        if number is not None and number <= 0:
            causes.append(
                invalid(storage_path, shown(requests["storage"]), "must be greater than zero")
            )
    class_name = as_str(spec.get("storageClassName"))
    if class_name:
        causes += [
            invalid("spec.storageClassName", class_name, msg)
            for msg in name_is_dns_subdomain(class_name, False)
        ]
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        causes.append(not_supported("spec.volumeMode", mode, ["Block", "Filesystem"]))
    if old is not None:
        causes += _pvc_update(obj, old)
    return causes


def _pvc_update(obj: dict[str, Any], old: dict[str, Any]) -> Causes:
    causes: Causes = []
    new_spec = dict(as_dict(obj.get("spec")))
    old_spec = dict(as_dict(old.get("spec")))
    # The volume binder may set volumeName once.
    if not old_spec.get("volumeName"):
        old_spec.pop("volumeName", None)
        if new_spec.get("volumeName") is not None:
            old_spec["volumeName"] = new_spec["volumeName"]
    new_requests = as_dict(as_dict(new_spec.get("resources")).get("requests"))
    old_requests = as_dict(as_dict(old_spec.get("resources")).get("requests"))
    bound = as_dict(obj.get("status")).get("phase") == "Bound"
    comparable_new = dict(new_spec)
    if bound:
        resources = dict(as_dict(new_spec.get("resources")))
        requests = dict(new_requests)
        requests["storage"] = old_requests.get("storage")
        resources["requests"] = requests
        comparable_new["resources"] = resources
        comparable_new.pop("volumeAttributesClassName", None)
        if "volumeAttributesClassName" in old_spec:
            comparable_new["volumeAttributesClassName"] = old_spec["volumeAttributesClassName"]
    if comparable_new != old_spec:
        causes.append(
            forbidden(
                "spec",
                "spec is immutable after creation except "
                "resources.requests and volumeAttributesClassName for "
                "bound claims",
            )
        )
    new_size, _ = quantity("", new_requests.get("storage"))
    old_size, _ = quantity("", old_requests.get("storage"))
    if new_size is not None and old_size is not None and new_size < old_size:
        causes.append(
            forbidden(
                "spec.resources.requests.storage", "field can not be less than previous value"
            )
        )
    if new_spec.get("volumeMode") != as_dict(old.get("spec")).get("volumeMode"):
        causes.append(invalid("volumeMode", new_spec.get("volumeMode"), "field is immutable"))
    return causes


def validate_lease(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (as_int(duration) or 0) <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (as_int(transitions) or 0) < 0:
        causes.append(
            invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    return causes


def validate_persistent_volume(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    """The parts of ``ValidatePersistentVolume`` a stored one needs: its name, access modes
    and a capacity."""
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=False, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    if not as_list(spec.get("accessModes")):
        causes.append(required("spec.accessModes"))
    if not as_dict(spec.get("capacity")):
        causes.append(required("spec.capacity"))
    return causes
