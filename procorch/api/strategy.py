"""Per-kind write rules: what create resets, what an update may touch, how deletion goes.

These are Kubernetes' registry "strategies" (``PrepareForCreate``, ``PrepareForUpdate``,
status-subresource rules, admission plugins' per-kind steps, graceful deletion). A
:class:`Strategy` says what one kind does differently; :func:`prepare_create` and
:func:`prepare_update` apply the rules every kind shares and then the kind's own. Each kind's
strategy is part of its definition in :mod:`procorch.api.registry`. Pure transformations of
dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from procorch.api.defaults import generate_job_selector
from procorch.api.meta import deep_copy
from procorch.api.quantity import parse_quantity
from procorch.api.resources import ResourceType, by_key
from procorch.api.serviceaccounts import service_account_volume
from procorch.api.taints import with_default_tolerations
from procorch.api.types.apps import TEMPLATE_GENERATION_ANNOTATION

Obj = dict[str, Any]

CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
DEFAULT_INGRESS_CLASS = "ingressclass.kubernetes.io/is-default-class"


class Stored(Protocol):
    """What admission may read of the store, by resource key (``core/pods``)."""

    def list(self, key: str) -> list[Obj]: ...

    def get(self, key: str, namespace: str, name: str) -> Obj | None: ...


def _empty_status(obj: Obj) -> Obj:
    return {}


@dataclass(frozen=True, kw_only=True)
class Strategy:
    """What one kind does differently when it is written (everything has a default)."""

    initial_status: Callable[[Obj], Obj] = _empty_status
    """The status a create starts from, for a kind with a status subresource."""
    status_on_create: bool = False
    """A create keeps the status it was sent (a Node: its agent registers it with one)."""
    on_create: Callable[[Obj], None] | None = None
    """The kind's own part of ``PrepareForCreate``."""
    on_update: Callable[[Obj, Obj], None] | None = None
    """The kind's own part of ``PrepareForUpdate``, given the new and the old object."""
    on_rename: Callable[[Obj], None] | None = None
    """A generated name was taken and replaced: refresh what was derived from the name."""
    admit: Callable[[Obj, Stored], None] | None = None
    """Mutating admission on create, after field tracking (what it adds has no manager)."""
    protected_names: frozenset[str] = frozenset()
    """Objects that may never be deleted (NamespaceLifecycle's immortal namespaces;
    ``kube-node-lease`` is not among them, in Kubernetes either)."""
    spec_finalizers: bool = False
    """``spec.finalizers`` hold a deletion too, and a second delete is refused while they do
    (the namespace registry)."""
    grace_period: Callable[[Obj, int | None], int] | None = None
    """Seconds a delete waits for the object's end (given the request's
    ``gracePeriodSeconds``); ``None``: the kind is deleted at once."""
    returns_deleted_object: bool = False
    """DELETE answers with the deleted object rather than a ``Status``, as typed clients
    expect of these kinds."""
    not_run: str = ""
    """The warning a write of a kind procorch stores but does not act on carries."""


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def tracks_generation(rt: ResourceType) -> bool:
    """Kinds with a status subresource, and custom resources, have a spec whose changes bump
    ``generation``."""
    return rt.has_status() or rt.custom


def _at_storage_version(rt: ResourceType, obj: Obj) -> None:
    """A custom resource is stored at its CRD's storage version, whichever version it was
    written through (conversion strategy ``None``: only ``apiVersion`` changes)."""
    storage = by_key(rt.key)
    if storage is not None:
        obj["apiVersion"] = storage.api_version


def prepare_create(rt: ResourceType, strategy: Strategy, obj: Obj) -> None:
    if rt.custom:
        _at_storage_version(rt, obj)
    if rt.custom and rt.has_status():
        obj.pop("status", None)  # the status subresource's to write
    elif rt.has_status() and not strategy.status_on_create:
        obj["status"] = strategy.initial_status(obj)
    if tracks_generation(rt):
        obj["metadata"]["generation"] = 1
    if strategy.on_create is not None:
        strategy.on_create(obj)


def prepare_update(rt: ResourceType, strategy: Strategy, new: Obj, old: Obj) -> None:
    """Main-resource update: status is the status subresource's business."""
    if rt.custom:
        _at_storage_version(rt, new)
    if rt.has_status():
        if "status" in old:
            new["status"] = deep_copy(old["status"])
        else:
            new.pop("status", None)
    if strategy.on_update is not None:
        strategy.on_update(new, old)
    if tracks_generation(rt):
        generation = int(old["metadata"].get("generation") or 1)
        if _spec_part(new) != _spec_part(old):
            generation += 1
        new["metadata"]["generation"] = generation


def prepare_status_update(new_body: Obj, old: Obj) -> Obj:
    """A status write changes only ``status`` (metadata stays as it was, as in Kubernetes)."""
    result = deep_copy(old)
    if "status" in new_body:
        result["status"] = new_body["status"]
    else:
        result.pop("status", None)
    return result


def prepare_ephemeral_update(new_body: Obj, old: Obj) -> Obj:
    """pods/ephemeralcontainers: only ``spec.ephemeralContainers`` changes."""
    result = deep_copy(old)
    containers = (new_body.get("spec") or {}).get("ephemeralContainers")
    if containers:
        result.setdefault("spec", {})["ephemeralContainers"] = containers
    else:
        result.get("spec", {}).pop("ephemeralContainers", None)
    return result


def prepare_finalize(new_body: Obj, old: Obj) -> Obj:
    """namespaces/finalize: only ``spec.finalizers`` changes."""
    result = deep_copy(old)
    finalizers = (new_body.get("spec") or {}).get("finalizers") or []
    result.setdefault("spec", {})["finalizers"] = list(finalizers)
    return result


# -- Pod ------------------------------------------------------------------------------------


def _pod_status(obj: Obj) -> Obj:
    return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}


def _pod_update(new: Obj, old: Obj) -> None:
    # Ephemeral containers are the ephemeralcontainers subresource's business.
    spec = new.setdefault("spec", {})
    spec.pop("ephemeralContainers", None)
    if (old.get("spec") or {}).get("ephemeralContainers"):
        spec["ephemeralContainers"] = deep_copy(old["spec"]["ephemeralContainers"])


def _pod_admit(obj: Obj, stored: Stored) -> None:
    """DefaultTolerationSeconds: five minutes on a node that is not ready or that nobody
    hears from, then the node lifecycle controller evicts the pod. ServiceAccount: the
    account's token, the cluster's CA and the namespace at
    ``/var/run/secrets/kubernetes.io/serviceaccount`` (:func:`service_account_volume`)."""
    spec = obj.get("spec")
    if isinstance(spec, dict):
        tolerations = spec.get("tolerations")
        spec["tolerations"] = with_default_tolerations(
            tolerations if isinstance(tolerations, list) else []
        )
        service_account_volume(obj, stored)


def _pod_grace_period(obj: Obj, requested: int | None) -> int:
    """Seconds of graceful termination: pods on a node only, as in Kubernetes."""
    spec = obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    configured = spec.get("terminationGracePeriodSeconds")
    return 30 if configured is None else max(0, int(configured))


POD = Strategy(
    initial_status=_pod_status,
    on_update=_pod_update,
    admit=_pod_admit,
    grace_period=_pod_grace_period,
    returns_deleted_object=True,
)


def qos_class(spec: Obj) -> str:
    """Guaranteed / Burstable / BestEffort from the containers' requests and limits."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: Obj = {}
    limits: Obj = {}
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


# -- Namespace ------------------------------------------------------------------------------


def _namespace_create(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    finalizers = list(spec.get("finalizers") or [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")
    spec["finalizers"] = finalizers


def _namespace_update(new: Obj, old: Obj) -> None:
    # spec.finalizers are the finalize subresource's business.
    new.setdefault("spec", {})["finalizers"] = list((old.get("spec") or {}).get("finalizers") or [])


NAMESPACE = Strategy(
    initial_status=lambda obj: {"phase": "Active"},
    on_create=_namespace_create,
    on_update=_namespace_update,
    protected_names=frozenset({"default", "kube-system", "kube-public"}),
    spec_finalizers=True,
)


# -- Workloads ------------------------------------------------------------------------------


def _job_rename(obj: Obj) -> None:
    if not (obj.get("spec") or {}).get("manualSelector"):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        labels["batch.kubernetes.io/job-name"] = labels["job-name"] = obj["metadata"]["name"]


JOB = Strategy(on_create=generate_job_selector, on_rename=_job_rename)


def _daemon_set_create(obj: Obj) -> None:
    obj["metadata"].setdefault("annotations", {})[TEMPLATE_GENERATION_ANNOTATION] = "1"


def _daemon_set_update(new: Obj, old: Obj) -> None:
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


DAEMON_SET = Strategy(
    # Fields Go always serializes (no omitempty); typed clients require them.
    initial_status=lambda obj: {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
    on_create=_daemon_set_create,
    on_update=_daemon_set_update,
)
REPLICA_SET = Strategy(initial_status=lambda obj: {"replicas": 0})
HPA = Strategy(initial_status=lambda obj: {"currentReplicas": 0, "desiredReplicas": 0})


# -- Everything else with a rule of its own ---------------------------------------------------


def _pvc_admit(obj: Obj, stored: Stored) -> None:
    """StorageObjectInUseProtection: the pvc-protection controller removes the finalizer
    once no pod uses the claim."""
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if isinstance(finalizers, list) and PVC_PROTECTION_FINALIZER not in finalizers:
        finalizers.append(PVC_PROTECTION_FINALIZER)


def _ingress_admit(obj: Obj, stored: Stored) -> None:
    """DefaultIngressClass: an Ingress created without a class gets the one IngressClass
    annotated ``ingressclass.kubernetes.io/is-default-class: "true"``."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict) or spec.get("ingressClassName"):
        return
    if ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/ingress.class"):
        return
    defaults = [
        c["metadata"]["name"]
        for c in stored.list("networking.k8s.io/ingressclasses")
        if (c["metadata"].get("annotations") or {}).get(DEFAULT_INGRESS_CLASS) == "true"
    ]
    if len(defaults) == 1:
        spec["ingressClassName"] = defaults[0]


def _crd_create(obj: Obj) -> None:
    # Its objects are deleted before it goes (apiextensions' cleanup finalizer).
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if CRD_CLEANUP not in finalizers:
        finalizers.append(CRD_CLEANUP)


PVC = Strategy(
    initial_status=lambda obj: {"phase": "Pending"}, admit=_pvc_admit, returns_deleted_object=True
)
SERVICE = Strategy(initial_status=lambda obj: {"loadBalancer": {}}, returns_deleted_object=True)
INGRESS = Strategy(admit=_ingress_admit)
CRD = Strategy(on_create=_crd_create)
STATUS_FROM_WRITER = Strategy(status_on_create=True)
RETURNS_DELETED = Strategy(returns_deleted_object=True)
DEFAULT = Strategy()

# Stored, not run (procorch.api.types.inert): kubectl apply --prune's allowlist needs them.
REPLICATION_CONTROLLER = Strategy(
    initial_status=lambda obj: {"replicas": 0},
    not_run="procorch stores ReplicationControllers but does not run them: use a Deployment",
)
STATEFUL_SET = Strategy(
    initial_status=lambda obj: {"replicas": 0, "availableReplicas": 0},
    not_run="procorch stores StatefulSets but does not run them yet: nothing creates this "
    "one's pods",
)
PERSISTENT_VOLUME = Strategy(
    initial_status=lambda obj: {"phase": "Pending"},
    returns_deleted_object=True,
    not_run="procorch does not use PersistentVolumes: a claim binds to a directory on its "
    "pod's node (storage class local-path)",
)
