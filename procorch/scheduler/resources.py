"""Resource arithmetic for scheduling: what a pod requests and what a node offers.

Quantities become integers once, here: CPU in millicores, everything else in its base unit
(bytes, counts), both rounded up as Kubernetes' ``MilliValue``/``Value`` do. A pod's
effective request follows Kubernetes' ``PodRequests``: the sum over app containers, raised
to the largest init container's request where that is bigger (sidecars, init containers
with ``restartPolicy: Always``, run alongside and so add up), plus ``spec.overhead``.

The *non-zero* variant is what kube-scheduler scores with: a container that requests no CPU
or memory is counted as requesting 100m / 200Mi, so empty pods still spread by load.

Pure data: no I/O, inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from procorch.api.quantity import bytes_of, cpu_millis

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# kube-scheduler's schedutil.DefaultMilliCPURequest and DefaultMemoryRequest.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Amounts = dict[str, int]


def quantity_value(resource: str, quantity: Any) -> int:
    """``quantity`` of ``resource`` as an integer (millicores for cpu); 0 when unparsable
    (the API server validates quantities, so that only happens to hand-made objects)."""
    try:
        return cpu_millis(quantity) if resource == CPU else bytes_of(quantity)
    except (ValueError, TypeError):
        return 0


def amounts(resource_list: Mapping[str, Any] | None) -> Amounts:
    """A ``ResourceList`` as integers."""
    if not isinstance(resource_list, Mapping):
        return {}
    return {str(name): quantity_value(str(name), q) for name, q in resource_list.items()}


def add_into(total: Amounts, more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def max_into(total: Amounts, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value


def is_scalar_resource(name: str) -> bool:
    """Extended resources (``example.com/gpu``), hugepages and attachable volumes: the
    resources other than cpu/memory/ephemeral-storage that kube-scheduler checks for fit."""
    if name.startswith(("hugepages-", "attachable-volumes-")):
        return True
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _containers(spec: Mapping[str, Any], field: str) -> Iterable[Mapping[str, Any]]:
    items = spec.get(field)
    if not isinstance(items, list):
        return ()
    return [c for c in items if isinstance(c, Mapping)]


def _container_requests(container: Mapping[str, Any]) -> Amounts:
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return {}
    return amounts(resources.get("requests"))


def _container_nonzero_requests(container: Mapping[str, Any]) -> Amounts:
    requests = _container_requests(container)
    requests.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
    requests.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
    return requests


def _aggregate(
    spec: Mapping[str, Any], requests_of: Callable[[Mapping[str, Any]], Amounts]
) -> Amounts:
    total: Amounts = {}
    for container in _containers(spec, "containers"):
        add_into(total, requests_of(container))
    sidecars: Amounts = {}
    init_peak: Amounts = {}
    for container in _containers(spec, "initContainers"):
        own = requests_of(container)
        if container.get("restartPolicy") == "Always":
            # A sidecar keeps running next to everything started after it.
            add_into(total, own)
            add_into(sidecars, own)
            during = dict(sidecars)
        else:
            during = dict(own)
            add_into(during, sidecars)
        max_into(init_peak, during)
    max_into(total, init_peak)
    add_into(total, amounts(spec.get("overhead")))
    return total


def pod_requests(pod: Mapping[str, Any]) -> Amounts:
    """The pod's effective request per resource, as kube-scheduler's fit check sees it."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return {}
    return {k: v for k, v in _aggregate(spec, _container_requests).items() if v}


def pod_nonzero_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, bytes) the pod is counted as using for scoring."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST
    total = _aggregate(spec, _container_nonzero_requests)
    return total.get(CPU, 0), total.get(MEMORY, 0)


def node_allocatable(node: Mapping[str, Any]) -> Amounts:
    """``status.allocatable`` as integers (a missing entry means none of it)."""
    status = node.get("status")
    if not isinstance(status, Mapping):
        return {}
    return amounts(status.get("allocatable"))
