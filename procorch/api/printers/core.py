"""Printers for the core (v1) kinds other than Pod: Node, Namespace, ConfigMap, Secret,
Service, Endpoints, Event, ServiceAccount and PersistentVolumeClaim.

Columns and cells follow Kubernetes' server-side printers. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from procorch.api.printers._base import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    Printer,
    age,
    created_age,
    dig,
    i,
    lst,
    m,
    name_of,
    s,
    wide,
)
from procorch.api.selectors import format_labels

# ---------------------------------------------------------------------------------- Node

NODE_COLUMNS = (
    NAME,
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    AGE,
    Column("Version", description="Kubelet Version reported by the node."),
    wide("Internal-IP", "The node's internal address."),
    wide("External-IP", "The node's external address."),
    wide("OS-Image", "The operating system the node reports."),
    wide("Kernel-Version", "The kernel version the node reports."),
    wide("Container-Runtime", "The container runtime the node reports."),
)

_ROLE_PREFIX = "node-role.kubernetes.io/"
_ROLE_LABEL = "kubernetes.io/role"


def _node_roles(labels: Obj) -> list[str]:
    roles = set()
    for key, value in labels.items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == _ROLE_LABEL and value:
            roles.add(s(value))
    return sorted(roles)


def _node_address(status: Obj, kind: str) -> str:
    for address in lst(status.get("addresses")):
        if s(m(address).get("type")) == kind:
            return s(m(address).get("address"))
    return "<none>"


def node_cells(node: Obj, now: datetime) -> list[Cell]:
    status = m(node.get("status"))
    states = []
    for cond in lst(status.get("conditions")):
        if s(m(cond).get("type")) == "Ready":
            states = ["Ready" if s(m(cond).get("status")) == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if dig(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    info = m(status.get("nodeInfo"))
    return [
        name_of(node),
        ",".join(states),
        ",".join(_node_roles(m(dig(node, "metadata", "labels")))) or "<none>",
        created_age(node, now),
        s(info.get("kubeletVersion")),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        s(info.get("osImage")) or "<unknown>",
        s(info.get("kernelVersion")) or "<unknown>",
        s(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


# ----------------------------------------------------------------- Namespace, ConfigMap, Secret

NAMESPACE_COLUMNS = (NAME, Column("Status", description="The status of the namespace"), AGE)


def namespace_cells(ns: Obj, now: datetime) -> list[Cell]:
    return [name_of(ns), s(dig(ns, "status", "phase")), created_age(ns, now)]


CONFIGMAP_COLUMNS = (NAME, Column("Data", description="How many keys the ConfigMap holds."), AGE)


def configmap_cells(cm: Obj, now: datetime) -> list[Cell]:
    count = len(m(cm.get("data"))) + len(m(cm.get("binaryData")))
    return [name_of(cm), count, created_age(cm, now)]


SECRET_COLUMNS = (
    NAME,
    Column("Type", description="Used to facilitate programmatic handling of secret data."),
    Column("Data", description="How many keys the Secret holds."),
    AGE,
)


def secret_cells(secret: Obj, now: datetime) -> list[Cell]:
    # stringData is folded into data on write; count the union in case it was not yet.
    keys = set(m(secret.get("data"))) | set(m(secret.get("stringData")))
    return [name_of(secret), s(secret.get("type")) or "Opaque", len(keys), created_age(secret, now)]


# ------------------------------------------------------------------------- Service, Endpoints

SERVICE_COLUMNS = (
    NAME,
    Column("Type", description="How the Service is exposed."),
    Column("Cluster-IP", description="The IP address of the Service inside the cluster."),
    Column("External-IP", description="Addresses outside the cluster that reach the Service."),
    Column("Port(s)", description="The ports the Service exposes."),
    AGE,
    wide("Selector", "The labels of the pods that back the Service."),
)


def _load_balancer_addresses(status: Obj) -> list[str]:
    found = set()
    for entry in lst(dig(status, "loadBalancer", "ingress")):
        entry = m(entry)
        address = s(entry.get("ip")) or s(entry.get("hostname"))
        if address:
            found.add(address)
    return sorted(found)


def _external_ip(svc: Obj, svc_type: str) -> str:
    spec = m(svc.get("spec"))
    external = [s(a) for a in lst(spec.get("externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        # The server prints wide, so the address list is never clipped here.
        addresses = _load_balancer_addresses(m(svc.get("status")))
        if external:
            return ",".join(addresses + external)
        return ",".join(addresses) if addresses else "<pending>"
    if svc_type == "ExternalName":
        return s(spec.get("externalName"))
    return "<unknown>"


def _service_ports(ports: list[object]) -> str:
    pieces = []
    for port in ports:
        port = m(port)
        protocol = s(port.get("protocol")) or "TCP"
        node_port = i(port.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{i(port.get('port'))}:{node_port}/{protocol}")
        else:
            pieces.append(f"{i(port.get('port'))}/{protocol}")
    return ",".join(pieces)


def service_cells(svc: Obj, now: datetime) -> list[Cell]:
    spec = m(svc.get("spec"))
    svc_type = s(spec.get("type")) or "ClusterIP"
    cluster_ips = lst(spec.get("clusterIPs"))
    cluster_ip = s(cluster_ips[0]) if cluster_ips else s(spec.get("clusterIP"))
    return [
        name_of(svc),
        svc_type,
        cluster_ip or "<none>",
        _external_ip(svc, svc_type),
        _service_ports(lst(spec.get("ports"))) or "<none>",
        created_age(svc, now),
        format_labels(m(spec.get("selector"))),
    ]


ENDPOINTS_COLUMNS = (
    NAME,
    Column("Endpoints", description="The addresses and ports behind the Service."),
    AGE,
)


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(subsets: list[object]) -> str:
    """At most three ``ip:port`` pairs, then ``+ N more...``; ``<none>`` without subsets."""
    if not subsets:
        return "<none>"
    limit, total = 3, 0
    shown: list[str] = []
    for subset in subsets:
        subset = m(subset)
        addresses = [s(m(a).get("ip")) for a in lst(subset.get("addresses"))]
        ports = lst(subset.get("ports"))
        # A headless Service may have addresses and no ports.
        pairs = (
            [[ip] for ip in addresses]
            if not ports
            else [[_host_port(ip, i(m(p).get("port"))) for ip in addresses] for p in ports]
        )
        for group in pairs:
            total += len(group)
            for text in group:
                if len(shown) == limit:
                    break
                shown.append(text)
    text = ",".join(shown)
    return f"{text} + {total - limit} more..." if total > limit else text


def endpoints_cells(ep: Obj, now: datetime) -> list[Cell]:
    return [name_of(ep), format_endpoints(lst(ep.get("subsets"))), created_age(ep, now)]


# ------------------------------------------------------------------------------------- Event

EVENT_COLUMNS = (
    Column("Last Seen", description="When the event was last observed."),
    Column("Type", description="Normal or Warning."),
    Column("Reason", description="Why the event happened, in one CamelCase word."),
    Column("Object", description="The object the event is about."),
    wide("Subobject", "The part of the object the event is about (e.g. a container)."),
    wide("Source", "The component that reported the event."),
    Column("Message", description="A human-readable description of the event."),
    wide("First Seen", "When the event was first observed."),
    wide("Count", "How many times the event was observed."),
    Column("Name", format="name", priority=1, description="The event's own name."),
)


def _event_source(event: Obj) -> str:
    component = s(dig(event, "source", "component")) or s(event.get("reportingComponent"))
    host = s(dig(event, "source", "host")) or s(event.get("reportingInstance"))
    return f"{component}, {host}" if host else component


def event_cells(event: Obj, now: datetime) -> list[Cell]:
    first = age(event.get("firstTimestamp"), now)
    if not event.get("firstTimestamp"):
        first = age(event.get("eventTime"), now)
    last = age(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = i(event.get("count"))
    series = event.get("series")
    if isinstance(series, Mapping):
        last = age(series.get("lastObservedTime"), now)
        count = i(series.get("count"))
    elif count == 0:
        count = 1  # events from the newer API are singletons without a count
    involved = m(event.get("involvedObject"))
    kind, name = s(involved.get("kind")).lower(), s(involved.get("name"))
    return [
        last,
        s(event.get("type")),
        s(event.get("reason")),
        f"{kind}/{name}" if name else kind,
        s(involved.get("fieldPath")),
        _event_source(event),
        s(event.get("message")).strip(),
        first,
        count,
        name_of(event),
    ]


# -------------------------------------------------------------------- ServiceAccount, PVC

SERVICEACCOUNT_COLUMNS = (
    NAME,
    Column("Secrets", description="How many secrets the ServiceAccount lists."),
    AGE,
)


def serviceaccount_cells(sa: Obj, now: datetime) -> list[Cell]:
    return [name_of(sa), len(lst(sa.get("secrets"))), created_age(sa, now)]


PVC_COLUMNS = (
    NAME,
    Column("Status", description="The phase of the claim."),
    Column("Volume", description="The volume bound to the claim."),
    Column("Capacity", description="The storage the bound volume provides."),
    Column("Access Modes", description="How the volume may be mounted."),
    Column("StorageClass", description="StorageClass of the pvc"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
    AGE,
    wide("VolumeMode", "Filesystem or Block."),
)

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def access_modes(modes: list[object]) -> str:
    present = {s(mode) for mode in modes}
    return ",".join(short for long, short in _ACCESS_MODES if long in present)


def pvc_cells(pvc: Obj, now: datetime) -> list[Cell]:
    spec, status = m(pvc.get("spec")), m(pvc.get("status"))
    phase = "Terminating" if dig(pvc, "metadata", "deletionTimestamp") else s(status.get("phase"))
    capacity = modes = ""
    if s(spec.get("volumeName")):
        modes = access_modes(lst(status.get("accessModes")))
        capacity = s(dig(status, "capacity", "storage"))
    annotations = m(dig(pvc, "metadata", "annotations"))
    storage_class = (
        s(annotations[_BETA_STORAGE_CLASS])
        if _BETA_STORAGE_CLASS in annotations
        else s(spec.get("storageClassName"))
    )
    return [
        name_of(pvc),
        phase,
        s(spec.get("volumeName")),
        capacity,
        modes,
        storage_class,
        s(spec.get("volumeAttributesClassName")) or "<unset>",
        created_age(pvc, now),
        s(spec.get("volumeMode")) or "<unset>",
    ]


NODE = Printer(NODE_COLUMNS, node_cells)
NAMESPACE = Printer(NAMESPACE_COLUMNS, namespace_cells)
CONFIG_MAP = Printer(CONFIGMAP_COLUMNS, configmap_cells)
SECRET = Printer(SECRET_COLUMNS, secret_cells)
SERVICE = Printer(SERVICE_COLUMNS, service_cells)
ENDPOINTS = Printer(ENDPOINTS_COLUMNS, endpoints_cells)
EVENT = Printer(EVENT_COLUMNS, event_cells)
SERVICE_ACCOUNT = Printer(SERVICEACCOUNT_COLUMNS, serviceaccount_cells)
PVC = Printer(PVC_COLUMNS, pvc_cells)
