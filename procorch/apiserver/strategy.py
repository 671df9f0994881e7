"""Per-kind write rules: what create resets, what an update may touch, how deletion goes.

These are Kubernetes' registry "strategies" (``PrepareForCreate``, ``PrepareForUpdate``,
status-subresource rules, graceful deletion), kept apart from the generic verb handling in
:mod:`procorch.apiserver.service`. Functions here are pure transformations of dicts.
"""

from __future__ import annotations

from typing import Any

from procorch.api.defaults import generate_job_selector
from procorch.api.meta import deep_copy
from procorch.api.quantity import parse_quantity
from procorch.api.resources import ResourceType, by_key
from procorch.api.types.apps import TEMPLATE_GENERATION_ANNOTATION

CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"

# Kinds whose status a create may set (Kubernetes lets nodes, events-like kinds do so).
_STATUS_ON_CREATE = {"Node", "Endpoints", "EndpointSlice", "Lease", "Event"}


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def tracks_generation(rt: ResourceType) -> bool:
    """Kinds with a status subresource, and custom resources, have a spec whose changes bump
    ``generation``."""
    return rt.has_status() or rt.custom


def _at_storage_version(rt: ResourceType, obj: dict[str, Any]) -> None:
    """A custom resource is stored at its CRD's storage version, whichever version it was
    written through (conversion strategy ``None``: only ``apiVersion`` changes)."""
    storage = by_key(rt.key)
    if storage is not None:
        obj["apiVersion"] = storage.api_version


def prepare_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    if rt.custom:
        _at_storage_version(rt, obj)
    if rt.custom and rt.has_status():
        obj.pop("status", None)  # the status subresource's to write
    elif rt.has_status() and rt.kind not in _STATUS_ON_CREATE:
        obj["status"] = initial_status(rt.kind, obj)
    if rt.kind == "CustomResourceDefinition":
        # Its objects are deleted before it goes (apiextensions' cleanup finalizer).
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if CRD_CLEANUP not in finalizers:
            finalizers.append(CRD_CLEANUP)
    if tracks_generation(rt):
        obj["metadata"]["generation"] = 1
    if rt.kind == "Namespace":
        spec = obj.setdefault("spec", {})
        finalizers = list(spec.get("finalizers") or [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        spec["finalizers"] = finalizers
    if rt.kind == "Job":
        generate_job_selector(obj)
    if rt.kind == "DaemonSet":
        obj["metadata"].setdefault("annotations", {})[TEMPLATE_GENERATION_ANNOTATION] = "1"


def rename(rt: ResourceType, obj: dict[str, Any]) -> None:
    """A generated name was taken and replaced: refresh what was derived from the name."""
    if rt.kind == "Job" and not (obj.get("spec") or {}).get("manualSelector"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        labels["batch.kubernetes.io/job-name"] = labels["job-name"] = obj["metadata"]["name"]


def initial_status(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    if kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    if kind == "Namespace":
        return {"phase": "Active"}
    if kind in ("PersistentVolumeClaim", "PersistentVolume"):
        return {"phase": "Pending"}
    if kind == "ReplicationController":
        return {"replicas": 0}
    if kind == "StatefulSet":
        return {"replicas": 0, "availableReplicas": 0}
    if kind == "Service":
        return {"loadBalancer": {}}
    # Fields Go always serializes (no omitempty); typed clients require them.
    if kind == "ReplicaSet":
        return {"replicas": 0}
    if kind == "DaemonSet":
        return {
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }
    if kind == "HorizontalPodAutoscaler":
        return {"currentReplicas": 0, "desiredReplicas": 0}
    return {}


def prepare_update(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Main-resource update: status is the status subresource's business."""
    if rt.custom:
        _at_storage_version(rt, new)
    if rt.has_status():
        if "status" in old:
            new["status"] = deep_copy(old["status"])
        else:
            new.pop("status", None)
    if rt.kind == "Namespace":
        new.setdefault("spec", {})["finalizers"] = list(
            (old.get("spec") or {}).get("finalizers") or []
        )
    if rt.kind == "Pod":
        # Ephemeral containers are the ephemeralcontainers subresource's business.
        spec = new.setdefault("spec", {})
        spec.pop("ephemeralContainers", None)
        if (old.get("spec") or {}).get("ephemeralContainers"):
            spec["ephemeralContainers"] = deep_copy(old["spec"]["ephemeralContainers"])
    if tracks_generation(rt):
        generation = int(old["metadata"].get("generation") or 1)
        if _spec_part(new) != _spec_part(old):
            generation += 1
        new["metadata"]["generation"] = generation
    if rt.kind == "DaemonSet":
        _bump_template_generation(new, old)


def _bump_template_generation(new: dict[str, Any], old: dict[str, Any]) -> None:
    """A changed template counts one more template generation (``daemonSetStrategy``)."""
    old_value = (old["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    try:
        generation = int(old_value) if old_value is not None else 0
    except ValueError:
        generation = 0
    old_template = (old.get("spec") or {}).get("template")
    if (new.get("spec") or {}).get("template") != old_template:
        generation += 1
    if generation:
        new["metadata"].setdefault("annotations", {})[TEMPLATE_GENERATION_ANNOTATION] = str(
            generation
        )


def prepare_status_update(new_body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A status write changes only ``status`` (metadata stays as it was, as in Kubernetes)."""
    result = deep_copy(old)
    if "status" in new_body:
        result["status"] = new_body["status"]
    else:
        result.pop("status", None)
    return result


def prepare_ephemeral_update(new_body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """pods/ephemeralcontainers: only ``spec.ephemeralContainers`` changes."""
    result = deep_copy(old)
    containers = (new_body.get("spec") or {}).get("ephemeralContainers")
    if containers:
        result.setdefault("spec", {})["ephemeralContainers"] = containers
    else:
        result.get("spec", {}).pop("ephemeralContainers", None)
    return result


def prepare_finalize(new_body: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """namespaces/finalize: only ``spec.finalizers`` changes."""
    result = deep_copy(old)
    finalizers = (new_body.get("spec") or {}).get("finalizers") or []
    result.setdefault("spec", {})["finalizers"] = list(finalizers)
    return result


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed / Burstable / BestEffort from the containers' requests and limits."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        c_requests = {
            k: v
            for k, v in (resources.get("requests") or {}).items()
            if k in ("cpu", "memory") and _positive(v)
        }
        c_limits = {
            k: v
            for k, v in (resources.get("limits") or {}).items()
            if k in ("cpu", "memory") and _positive(v)
        }
        requests.update(c_requests)
        limits.update(c_limits)
        if set(c_limits) != {"cpu", "memory"}:
            guaranteed = False
        for name, limit in c_limits.items():
            request = c_requests.get(name, limit)
            if _quantity(request) != _quantity(limit):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and containers:
        return "Guaranteed"
    return "Burstable"


def _quantity(value: Any) -> Any:
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return None


def _positive(value: Any) -> bool:
    parsed = _quantity(value)
    return parsed is not None and parsed > 0


_NOT_RUN = {
    "core/replicationcontrollers": "procorch stores ReplicationControllers but does not run "
    "them: use a Deployment",
    "apps/statefulsets": "procorch stores StatefulSets but does not run them yet: nothing "
    "creates this one's pods",
    "core/persistentvolumes": "procorch does not use PersistentVolumes: a claim binds to a "
    "directory on its pod's node (storage class local-path)",
}


def not_run(rt: ResourceType) -> str:
    """The warning a write of a kind procorch stores but does not act on carries."""
    return _NOT_RUN.get(rt.key, "")
