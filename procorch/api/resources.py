"""The registry of served resource types: group, version, kind, plural, scope, short names.

Discovery, routing, the store's keys, printers and clients all look kinds up here, so that a
kind is declared once. Pure data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str
    # The kind the subresource takes and returns; empty means the parent's kind.
    kind: str = ""
    group: str | None = None
    version: str | None = None
    verbs: tuple[str, ...] = ("get", "patch", "update")


STATUS = Subresource("status")
SCALE = Subresource("scale", kind="Scale", group="autoscaling", version="v1")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    singular: str = field(default="")
    custom: bool = False
    """Defined by a CustomResourceDefinition (served while it exists)."""
    scale_paths: tuple[str, str, str] = (".spec.replicas", ".status.replicas", "")
    """Where the ``scale`` subresource reads and writes: spec replicas, status replicas, and
    the label selector (a CRD's ``subresources.scale``; empty: ``spec.selector``)."""

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """``deployments.apps``, or ``pods`` for the core group (as in Kubernetes messages)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> str:
        """The store's name for this resource: ``apps/deployments``, ``core/pods``."""
        return f"{self.group or 'core'}/{self.plural}"

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def has_status(self) -> bool:
        return self.subresource("status") is not None

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path of the collection, or of one object when ``name`` is given."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base


def _rt(
    group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    version: str = "v1",
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subs: tuple[Subresource, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=subs,
        verbs=verbs,
    )


_ALL = ("all",)
_LOG = Subresource("log", kind="Pod", verbs=("get",))
_EXEC = Subresource("exec", kind="PodExecOptions", verbs=("create", "get"))
_ATTACH = Subresource("attach", kind="PodAttachOptions", verbs=("create", "get"))
_PORTFORWARD = Subresource("portforward", kind="PodPortForwardOptions", verbs=("create", "get"))
EPHEMERAL = "ephemeralcontainers"
_EPHEMERAL = Subresource(EPHEMERAL, kind="Pod", verbs=("get", "patch", "update"))
_BINDING = Subresource("binding", kind="Binding", verbs=("create",))
# kubectl drain evicts only when discovery names the Eviction's group and version here.
_EVICTION = Subresource(
    "eviction", kind="Eviction", group="policy", version="v1", verbs=("create",)
)
_FINALIZE = Subresource("finalize", verbs=("update",))
_TOKEN = Subresource(
    "token", kind="TokenRequest", group="authentication.k8s.io", version="v1", verbs=("create",)
)

RESOURCES: list[ResourceType] = [
    # core/v1
    _rt(
        "",
        "Namespace",
        "namespaces",
        namespaced=False,
        short=("ns",),
        subs=(STATUS, _FINALIZE),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _rt(
        "",
        "Pod",
        "pods",
        short=("po",),
        categories=_ALL,
        subs=(STATUS, _LOG, _EXEC, _ATTACH, _PORTFORWARD, _EPHEMERAL, _BINDING, _EVICTION),
    ),
    _rt("", "Node", "nodes", namespaced=False, short=("no",), subs=(STATUS,)),
    _rt("", "ConfigMap", "configmaps", short=("cm",)),
    _rt("", "Secret", "secrets"),
    _rt(
        "",
        "Service",
        "services",
        short=("svc",),
        categories=_ALL,
        subs=(STATUS,),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _rt("", "Endpoints", "endpoints", short=("ep",)),
    _rt("", "Event", "events", short=("ev",)),
    _rt("", "ServiceAccount", "serviceaccounts", short=("sa",), subs=(_TOKEN,)),
    _rt("", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), subs=(STATUS,)),
    # apps/v1
    _rt(
        "apps",
        "Deployment",
        "deployments",
        short=("deploy",),
        categories=_ALL,
        subs=(STATUS, SCALE),
    ),
    _rt("apps", "ReplicaSet", "replicasets", short=("rs",), categories=_ALL, subs=(STATUS, SCALE)),
    _rt("apps", "DaemonSet", "daemonsets", short=("ds",), categories=_ALL, subs=(STATUS,)),
    _rt("apps", "ControllerRevision", "controllerrevisions"),
    # batch/v1
    _rt("batch", "Job", "jobs", categories=_ALL, subs=(STATUS,)),
    _rt("batch", "CronJob", "cronjobs", short=("cj",), categories=_ALL, subs=(STATUS,)),
    # networking.k8s.io/v1
    _rt("networking.k8s.io", "Ingress", "ingresses", short=("ing",), subs=(STATUS,)),
    _rt("networking.k8s.io", "IngressClass", "ingressclasses", namespaced=False),
    # discovery.k8s.io/v1
    _rt("discovery.k8s.io", "EndpointSlice", "endpointslices"),
    # coordination.k8s.io/v1
    _rt("coordination.k8s.io", "Lease", "leases"),
    # Stored, not run yet (procorch.api.types.inert): kubectl apply --prune's allowlist.
    _rt(
        "",
        "ReplicationController",
        "replicationcontrollers",
        short=("rc",),
        categories=_ALL,
        subs=(STATUS,),
    ),
    _rt(
        "", "PersistentVolume", "persistentvolumes", namespaced=False, short=("pv",), subs=(STATUS,)
    ),
    _rt(
        "apps", "StatefulSet", "statefulsets", short=("sts",), categories=_ALL, subs=(STATUS, SCALE)
    ),
    _rt(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        namespaced=False,
        short=("crd", "crds"),
        categories=("api-extensions",),
        subs=(STATUS,),
    ),
    # autoscaling/v2
    _rt(
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        version="v2",
        short=("hpa",),
        categories=_ALL,
        subs=(STATUS,),
    ),
    # policy/v1
    _rt("policy", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), subs=(STATUS,)),
    # rbac.authorization.k8s.io/v1
    _rt("rbac.authorization.k8s.io", "Role", "roles"),
    _rt("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
    _rt("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", namespaced=False),
    _rt("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
]

# Group order as discovery lists it (the core group is served separately under /api).
GROUP_ORDER: tuple[str, ...] = (
    "apps",
    "batch",
    "networking.k8s.io",
    "discovery.k8s.io",
    "coordination.k8s.io",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
)

_BY_PATH: dict[tuple[str, str, str], ResourceType] = {}
_BY_GVK: dict[tuple[str, str], ResourceType] = {}
_BY_KEY: dict[str, ResourceType] = {}
_LISTENERS: list[Callable[[], None]] = []


def _index() -> None:
    _BY_PATH.clear()
    _BY_GVK.clear()
    _BY_KEY.clear()
    for r in RESOURCES:
        _BY_PATH[(r.group, r.version, r.plural)] = r
        _BY_GVK[(r.api_version, r.kind)] = r
        _BY_KEY.setdefault(r.key, r)  # a custom resource's first version is its storage's
    for listener in list(_LISTENERS):
        listener()


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever the served resources change (a CRD installed or removed)."""
    _LISTENERS.append(listener)


def register(types: list[ResourceType]) -> None:
    """Serve ``types`` (a CustomResourceDefinition's versions, its storage version first).
    RESOURCES is changed in place: whoever imported it sees the change."""
    for rt in types:
        if (rt.group, rt.version, rt.plural) in _BY_PATH:
            raise ValueError(f"{rt.plural}.{rt.group}/{rt.version} is already served")
    RESOURCES.extend(types)
    _index()


def unregister(group: str, plural: str) -> list[ResourceType]:
    """Stop serving the custom resource ``plural.group``; the types that were served."""
    gone = [r for r in RESOURCES if r.custom and r.group == group and r.plural == plural]
    if gone:
        RESOURCES[:] = [r for r in RESOURCES if r not in gone]
        _index()
    return gone


_index()


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource served at ``/apis/{group}/{version}/{plural}`` (group ``""`` for core)."""
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_GVK.get((api_version, kind))


def by_key(key: str) -> ResourceType | None:
    return _BY_KEY.get(key)


def must(key: str) -> ResourceType:
    """The resource with store key ``key`` (``core/pods``); KeyError if not served."""
    rt = _BY_KEY.get(key)
    if rt is None:
        raise KeyError(key)
    return rt


def lookup(name: str) -> ResourceType | None:
    """Resolve what a user types (``deploy``, ``deployments``, ``Deployment``,
    ``deployments.apps``) to a resource, as kubectl's RESTMapper does."""
    lowered = name.lower()
    plural_part, _, group_part = lowered.partition(".")
    for r in RESOURCES:
        if group_part and r.group != group_part:
            continue
        if plural_part in (r.plural, r.singular_name, r.kind.lower()) or (
            plural_part in r.short_names
        ):
            return r
    return None


def group_versions() -> list[tuple[str, str]]:
    """Every (group, version) served, the core group first, then the built-in groups, then
    custom resources' groups by name (each group's storage versions first)."""
    seen: list[tuple[str, str]] = [("", "v1")]
    custom = sorted({r.group for r in RESOURCES if r.custom} - set(GROUP_ORDER))
    for group in (*GROUP_ORDER, *custom):
        for r in RESOURCES:
            if r.group == group and (group, r.version) not in seen:
                seen.append((group, r.version))
    return seen


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]
