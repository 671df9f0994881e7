"""What a Service's EndpointSlices and Endpoints should hold, computed from its pods. Pure data.

Kubernetes' rules (``pkg/controller/endpointslice``, ``pkg/controller/endpoint`` and
``endpointslice/util``), for a Service with a selector:

* A pod is an endpoint when it has an IP and has not ended (phase Succeeded or Failed). A
  terminating pod (``deletionTimestamp`` set) stays in the slices, marked so.
* Conditions: ``ready`` = pod Ready and not terminating, ``serving`` = pod Ready (even while
  terminating), ``terminating`` = deletion requested. ``publishNotReadyAddresses`` makes every
  endpoint ready.
* A ``targetPort`` name is resolved per pod against its containers' ports; a pod that has no
  such port is left out of that port. Pods whose ports resolve alike share a slice (at most 100
  endpoints each).
* core/v1 Endpoints: ready pods under ``addresses``, the others under ``notReadyAddresses``;
  terminating pods are left out unless ``publishNotReadyAddresses``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procorch.api.conditions import is_ready as pod_ready

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_ENDPOINTS_PER_SLICE = 100

# Labels of the Service that are not copied onto its slices (they mean something there).
_RESERVED_LABELS = {SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL}

PortKey = tuple[tuple[str, int, str], ...]  # (name, port, protocol) for each resolved port


def is_headless(service: Obj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def selects_pods(service: Obj) -> bool:
    """Whether the controller keeps endpoints for ``service`` (a selector, not ExternalName)."""
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def selector_matches(service: Obj, labels: dict[str, str] | None) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def pod_is_endpoint(pod: Obj, *, include_terminating: bool) -> bool:
    status = pod.get("status") or {}
    if not status.get("podIP"):
        return False
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for a Service port: ``targetPort`` as a number, or the containerPort
    of that name (and protocol) in the pod's containers (``podutil.FindPort``)."""
    target = service_port.get("targetPort")
    if target is None or target == "":
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return int(number) if number else None
    return None


def resolve_ports(service: Obj, pod: Obj) -> PortKey:
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, port)
        if number is None:
            continue
        resolved.append((str(port.get("name") or ""), number, str(port.get("protocol") or "TCP")))
    return tuple(resolved)


def _target_ref(pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    return {
        "kind": "Pod",
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
    }


def _hostname(service: Obj, pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    name = (service.get("metadata") or {}).get("name")
    if spec.get("hostname") and spec.get("subdomain") == name:
        return str(spec["hostname"])
    return None


def slice_endpoint(service: Obj, pod: Obj) -> Obj:
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ready = pod_ready(pod)
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    endpoint: Obj = {
        "addresses": [str(pod["status"]["podIP"])],
        "conditions": {
            "ready": publish or (ready and not terminating),
            "serving": publish or ready,
            "terminating": terminating,
        },
        "targetRef": _target_ref(pod),
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = str(node)
    hostname = _hostname(service, pod)
    if hostname:
        endpoint["hostname"] = hostname
    return endpoint


def _ports_of(service: Obj, key: PortKey) -> list[Obj]:
    app_protocols = {
        str(p.get("name") or ""): p.get("appProtocol")
        for p in (service.get("spec") or {}).get("ports") or []
    }
    ports = []
    for name, number, protocol in key:
        port: Obj = {"name": name, "port": number, "protocol": protocol}
        if app_protocols.get(name):
            port["appProtocol"] = app_protocols[name]
        ports.append(port)
    return ports


@dataclass(frozen=True)
class DesiredSlice:
    """One slice's content: its ports and its endpoints (sorted by address)."""

    port_key: PortKey
    ports: list[Obj]
    endpoints: list[Obj]


def desired_slices(service: Obj, pods: list[Obj]) -> list[DesiredSlice]:
    """The slices ``service`` should have over ``pods`` (already matched by its selector).
    With no endpoint at all, one empty placeholder slice, as Kubernetes keeps."""
    groups: dict[PortKey, list[Obj]] = {}
    for pod in pods:
        if not pod_is_endpoint(pod, include_terminating=True):
            continue
        groups.setdefault(resolve_ports(service, pod), []).append(slice_endpoint(service, pod))
    result: list[DesiredSlice] = []
    for key in sorted(groups):
        endpoints = sorted(groups[key], key=lambda e: (e["addresses"][0], e["targetRef"]["name"]))
        for start in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
            chunk = endpoints[start : start + MAX_ENDPOINTS_PER_SLICE]
            result.append(DesiredSlice(key, _ports_of(service, key), chunk))
    if not result:
        result.append(DesiredSlice((), [], []))
    return result


def slice_labels(service: Obj) -> dict[str, str]:
    meta = service.get("metadata") or {}
    labels = {k: str(v) for k, v in (meta.get("labels") or {}).items() if k not in _RESERVED_LABELS}
    labels[SERVICE_NAME_LABEL] = str(meta.get("name") or "")
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def owner_reference(service: Obj) -> Obj:
    meta = service.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def slice_port_key(slice_: Obj) -> PortKey:
    return tuple(
        (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"))
        for p in slice_.get("ports") or []
    )


def slice_matches(slice_: Obj, desired: DesiredSlice, labels: dict[str, str], owner: Obj) -> bool:
    """Whether a stored slice already holds ``desired`` (nothing to write)."""
    meta = slice_.get("metadata") or {}
    return (
        slice_.get("addressType") == "IPv4"
        and (slice_.get("endpoints") or []) == desired.endpoints
        and (slice_.get("ports") or []) == desired.ports
        and (meta.get("labels") or {}) == labels
        and (meta.get("ownerReferences") or []) == [owner]
    )


def desired_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """core/v1 Endpoints subsets: addresses grouped by identical resolved ports."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[PortKey, tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not pod_is_endpoint(pod, include_terminating=publish):
            continue
        key = resolve_ports(service, pod)
        if not key and (service.get("spec") or {}).get("ports"):
            continue
        address: Obj = {"ip": str(pod["status"]["podIP"]), "targetRef": _target_ref(pod)}
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = str(node)
        hostname = _hostname(service, pod)
        if hostname:
            address["hostname"] = hostname
        ready, not_ready = groups.setdefault(key, ([], []))
        (ready if publish or pod_ready(pod) else not_ready).append(address)
    subsets = []
    for key in sorted(groups):
        ready, not_ready = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
        ports = [{"name": n, "port": p, "protocol": proto} for n, p, proto in key]
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


def endpoints_labels(service: Obj) -> dict[str, str]:
    meta = service.get("metadata") or {}
    labels = {k: str(v) for k, v in (meta.get("labels") or {}).items()}
    labels[SKIP_MIRROR_LABEL] = "true"
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels
