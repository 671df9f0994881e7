"""Defaults for the core/v1 kinds other than Pod: Service, Secret, Namespace, Endpoints,
PersistentVolumeClaim, Node.

Mirrors Kubernetes 1.32's ``SetDefaults_Service``, ``SetDefaults_Secret`` (and the v1
conversion that folds ``stringData`` into ``data``), ``SetDefaults_Namespace``/``Status``,
``SetDefaults_Endpoints``, ``SetDefaults_PersistentVolumeClaim``/``Spec`` and
``SetDefaults_NodeStatus``. A Service also gets the IP-family fields and ``clusterIPs`` the
Service registry fills in on a single-stack IPv4 cluster (procorch's case). Pure data.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from procorch.api.defaults.pod import _dict, _dicts, round_resource_list, set_if_empty, set_missing

CLIENT_IP_AFFINITY_SECONDS = 10800
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def service(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    set_if_empty(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = _dict(spec, "sessionAffinityConfig")
        client_ip = _dict(config, "clientIP") if config is not None else None
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": CLIENT_IP_AFFINITY_SECONDS}
            }
    set_if_empty(spec, "type", "ClusterIP")
    for port in _dicts(spec, "ports"):
        set_if_empty(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    kind = spec["type"]
    externally_accessible = kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if externally_accessible:
        set_if_empty(spec, "externalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer", "ClusterIP"):
        set_missing(spec, "internalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        set_missing(spec, "allocateLoadBalancerNodePorts", True)
        status = _dict(obj, "status")
        load_balancer = _dict(status, "loadBalancer") if status is not None else None
        if load_balancer is not None:
            for ingress in _dicts(load_balancer, "ingress"):
                if ingress.get("ip") and ingress.get("ipMode") is None:
                    ingress["ipMode"] = "VIP"
    if kind != "ExternalName":
        # What the Service registry fills in on a single-stack IPv4 cluster.
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [cluster_ip]
        elif spec.get("clusterIPs") and not cluster_ip and isinstance(spec["clusterIPs"], list):
            spec["clusterIP"] = spec["clusterIPs"][0]
        set_missing(spec, "ipFamilyPolicy", "SingleStack")
        set_missing(spec, "ipFamilies", ["IPv4"])


def _unwrap_base64(values: Any) -> None:
    """Base64 wrapped over lines (a YAML block, as the kubernetes.io examples write it): Go's
    decoder skips CR and LF and stores the bytes, so reads see the base64 unwrapped."""
    if isinstance(values, dict):
        for key, value in values.items():
            if isinstance(value, str) and ("\n" in value or "\r" in value):
                values[key] = value.replace("\r", "").replace("\n", "")


def config_map(obj: dict[str, Any]) -> None:
    _unwrap_base64(obj.get("binaryData"))


def secret(obj: dict[str, Any]) -> None:
    set_if_empty(obj, "type", "Opaque")
    _unwrap_base64(obj.get("data"))
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            # stringData wins over data, as in Kubernetes; data is base64 in JSON.
            text = value if isinstance(value, str) else str(value)
            data[key] = base64.b64encode(text.encode()).decode("ascii")


def namespace(obj: dict[str, Any]) -> None:
    meta = _dict(obj, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is not None and isinstance(name, str) and name:
        labels = _dict(meta, "labels")
        if labels is None:
            labels = meta["labels"] = {}
        labels[NAMESPACE_NAME_LABEL] = name
    status = _dict(obj, "status")
    if status is None:
        status = obj["status"] = {}
    set_if_empty(status, "phase", "Active")


def endpoints(obj: dict[str, Any]) -> None:
    for subset in _dicts(obj, "subsets"):
        for port in _dicts(subset, "ports"):
            set_if_empty(port, "protocol", "TCP")


def persistent_volume_claim(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        set_missing(spec, "volumeMode", "Filesystem")
        resources = _dict(spec, "resources")
        if resources is not None:
            round_resource_list(resources.get("requests"))
            round_resource_list(resources.get("limits"))
    status = _dict(obj, "status")
    if status is None:
        status = obj["status"] = {}
    set_if_empty(status, "phase", "Pending")


def node(obj: dict[str, Any]) -> None:
    status = _dict(obj, "status")
    if status is None:
        return
    capacity = _dict(status, "capacity")
    if capacity is not None and status.get("allocatable") is None:
        status["allocatable"] = copy.deepcopy(capacity)
    round_resource_list(status.get("capacity"))
    round_resource_list(status.get("allocatable"))


def persistent_volume(obj: dict[str, Any]) -> None:
    """Kubernetes' ``SetDefaults_PersistentVolume``."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        if not spec.get("persistentVolumeReclaimPolicy"):
            spec["persistentVolumeReclaimPolicy"] = "Retain"
        if not spec.get("volumeMode"):
            spec["volumeMode"] = "Filesystem"
    status = obj.setdefault("status", {})
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Pending"
