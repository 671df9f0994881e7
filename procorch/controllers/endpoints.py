"""The endpoints controller: EndpointSlices (discovery.k8s.io/v1) and Endpoints (core/v1) of
every Service with a selector, from the pods it selects.

What goes in them is :mod:`procorch.controllers.endpointslices`; this module keeps them
written. One key per Service. A pod event enqueues the Services whose selector matches the
pod's old or new labels, and only when something an endpoint shows changed (IP, readiness,
deletion, phase, ports, labels): the zero-downtime contract of the node agent (a deleted pod is
signalled only once no slice lists it as ready) waits on this controller, so the path from a
pod write to the slice write is one queue hop and one store write.

Slices are this controller's when they carry ``endpointslice.kubernetes.io/managed-by:
endpointslice-controller.k8s.io``; others (a selector-less Service's hand-made slices) are never
touched. Endpoints are this controller's when labelled ``endpointslice.kubernetes.io/skip-mirror``
(as Kubernetes' endpoints controller labels them). Slices are named ``<service>-<random>``,
owned by the Service, reused by port set and updated in place, so a Service normally has one.

The informer cache can lag behind this controller's own writes (a slice just created is not in
it yet); :class:`_OwnWrites` remembers what was written until the cache has caught up, so a
second reconcile in between never creates a duplicate or acts on an older copy (Kubernetes'
``EndpointSliceTracker``).

Concurrency: single event loop; several workers, never two on one Service.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.controllers import endpointslices as es
from procorch.reconcile.controller import Controller, key_of
from procorch.reconcile.factory import InformerFactory

SERVICES = must("core/services")
PODS = must("core/pods")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")
ENDPOINTS = must("core/endpoints")

Obj = dict[str, Any]
Key = tuple[str, str]

_SLICE_INDEX = "endpoints-controller/service"


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _ours(slice_: Obj) -> bool:
    labels = (slice_.get("metadata") or {}).get("labels") or {}
    return labels.get(es.MANAGED_BY_LABEL) == es.MANAGED_BY


def _slice_service(slice_: Obj) -> list[str]:
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(es.SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace') or ''}/{name}"] if name and _ours(slice_) else []


def _pod_view(pod: Obj | None) -> Any:
    """What of a pod shows in its endpoints: a change elsewhere needs no reconcile."""
    if pod is None:
        return None
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return (
        meta.get("labels"),
        bool(meta.get("deletionTimestamp")),
        status.get("podIP"),
        status.get("phase"),
        es.pod_ready(pod),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
        [c.get("ports") for c in spec.get("containers") or []],
    )


class _OwnWrites:
    """Slices this controller wrote (or deleted) that the informer has not shown yet."""

    def __init__(self) -> None:
        self._seen: dict[Key, tuple[int, Obj | None]] = {}  # None: deleted

    def wrote(self, obj: Obj) -> None:
        self._seen[key_of(obj)] = (_rv(obj), obj)

    def deleted(self, obj: Obj) -> None:
        self._seen[key_of(obj)] = (_rv(obj), None)

    def observed(self, etype: str, obj: Obj) -> None:
        """An informer event: forget what the cache now knows as well."""
        key = key_of(obj)
        own = self._seen.get(key)
        if own is None:
            return
        if etype == "DELETED" or (own[1] is not None and _rv(obj) >= own[0]):
            del self._seen[key]

    def view(self, namespace: str, service: str, cached: list[Obj]) -> list[Obj]:
        """The slices of ``service``: the cache's, with own newer writes applied."""
        found: dict[Key, Obj] = {key_of(s): s for s in cached}
        for key, (rv, obj) in self._seen.items():
            if key[0] != namespace:
                continue
            if obj is None:
                found.pop(key, None)
            elif (obj["metadata"].get("labels") or {}).get(es.SERVICE_NAME_LABEL) == service:
                current = found.get(key)
                if current is None or _rv(current) < rv:
                    found[key] = obj
        return sorted(found.values(), key=lambda s: str(s["metadata"]["name"]))

    def forget_service(self, namespace: str, service: str) -> None:
        for key, (_, obj) in list(self._seen.items()):
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            if key[0] == namespace and labels.get(es.SERVICE_NAME_LABEL) == service:
                del self._seen[key]


class EndpointsController(Controller[Key]):
    name = "endpoints"
    workers = 4

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        super().__init__(client, informers)
        self._own = _OwnWrites()

    def setup(self) -> None:
        self.services = self.watch(SERVICES)
        self.pods = self.watch(PODS)
        self.slices = self.watch(ENDPOINT_SLICES)
        self.endpoints = self.watch(ENDPOINTS)
        self.slices.add_index(_SLICE_INDEX, _slice_service)
        self.services.add_handler(lambda _t, obj, _o: self.queue.add(key_of(obj)))
        self.pods.add_handler(self._on_pod)
        self.slices.add_handler(self._on_slice)
        self.endpoints.add_handler(self._on_endpoints)

    # -- event mapping -------------------------------------------------------------------------

    def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        if etype == "MODIFIED" and _pod_view(pod) == _pod_view(old):
            return
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        labels = [(pod.get("metadata") or {}).get("labels")]
        if old is not None:
            labels.append((old.get("metadata") or {}).get("labels"))
        for service in self.services.list(namespace):
            if any(es.selector_matches(service, lbl) for lbl in labels):
                self.queue.add(key_of(service))

    def _on_slice(self, etype: str, slice_: Obj, _old: Obj | None) -> None:
        self._own.observed(etype, slice_)
        for key in _slice_service(slice_):
            namespace, _, name = key.partition("/")
            self.queue.add((namespace, name))

    def _on_endpoints(self, _etype: str, obj: Obj, _old: Obj | None) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(es.SKIP_MIRROR_LABEL) == "true":
            self.queue.add(key_of(obj))

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        service = self.services.get(name, namespace)
        if service is not None and (service.get("metadata") or {}).get("deletionTimestamp"):
            service = None
        slices = self._own.view(
            namespace, name, self.slices.by_index(_SLICE_INDEX, f"{namespace}/{name}")
        )
        if service is None or not es.selects_pods(service):
            for slice_ in slices:
                await self._delete_slice(slice_)
            if service is None:
                # A selector-less Service's Endpoints are written by hand (or, for
                # ``kubernetes``, by the control plane): only a deleted Service loses them.
                self._own.forget_service(namespace, name)
                await self._delete_endpoints(namespace, name)
            return None
        pods = [
            p
            for p in self.pods.list(namespace)
            if es.selector_matches(service, (p.get("metadata") or {}).get("labels"))
        ]
        await self._sync_slices(service, pods, slices)
        await self._sync_endpoints(service, pods)
        return None

    async def _sync_slices(self, service: Obj, pods: list[Obj], slices: list[Obj]) -> None:
        desired = es.desired_slices(service, pods)
        labels = es.slice_labels(service)
        owner = es.owner_reference(service)
        # Reuse slices by port set first (an update in place, not a create and a delete), then
        # any leftover one for what remains.
        unused = list(slices)
        plan: list[tuple[es.DesiredSlice, Obj | None]] = []
        pending: list[es.DesiredSlice] = []
        for want in desired:
            match = next((s for s in unused if es.slice_port_key(s) == want.port_key), None)
            if match is None:
                pending.append(want)
                continue
            unused.remove(match)
            plan.append((want, match))
        for want in pending:
            plan.append((want, unused.pop(0) if unused else None))
        for want, current in plan:
            if current is not None and es.slice_matches(current, want, labels, owner):
                continue
            body: Obj = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"labels": labels, "ownerReferences": [owner]},
                "addressType": "IPv4",
                "endpoints": want.endpoints,
                "ports": want.ports,
            }
            namespace = str(service["metadata"]["namespace"])
            if current is None:
                prefix = str(service["metadata"]["name"])[:57] + "-"
                body["metadata"]["generateName"] = prefix
                created = await self.client.create(ENDPOINT_SLICES, body, namespace=namespace)
                self._own.wrote(created)
            else:
                meta = current["metadata"]
                body["metadata"] = {
                    **meta,
                    "labels": labels,
                    "ownerReferences": [owner],
                }
                updated = await self.client.update(ENDPOINT_SLICES, body, namespace=namespace)
                self._own.wrote(updated)
        for leftover in unused:
            await self._delete_slice(leftover)

    async def _delete_slice(self, slice_: Obj) -> None:
        meta = slice_["metadata"]
        try:
            await self.client.delete(
                ENDPOINT_SLICES,
                str(meta["name"]),
                namespace=str(meta.get("namespace") or ""),
                uid=str(meta.get("uid") or "") or None,
            )
        except (errors.NotFound, errors.Conflict):
            pass
        self._own.deleted(slice_)

    async def _sync_endpoints(self, service: Obj, pods: list[Obj]) -> None:
        meta = service["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        subsets = es.desired_subsets(service, pods)
        labels = es.endpoints_labels(service)
        current = self.endpoints.get(name, namespace)
        if current is not None:
            current_labels = (current.get("metadata") or {}).get("labels") or {}
            if current_labels.get(es.SKIP_MIRROR_LABEL) != "true":
                return  # someone else's Endpoints: leave them
            if (current.get("subsets") or []) == subsets and current_labels == labels:
                return
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        }
        if subsets:
            body["subsets"] = subsets
        if current is None:
            try:
                await self.client.create(ENDPOINTS, body, namespace=namespace)
            except errors.AlreadyExists:
                self.queue.add_after((namespace, name), 0.05)  # the cache will catch up
            return
        body["metadata"] = {**current["metadata"], "labels": labels}
        await self.client.update(ENDPOINTS, body, namespace=namespace)

    async def _delete_endpoints(self, namespace: str, name: str) -> None:
        current = self.endpoints.get(name, namespace)
        if current is None:
            return
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(es.SKIP_MIRROR_LABEL) != "true":
            return
        try:
            await self.client.delete(
                ENDPOINTS, name, namespace=namespace, uid=current["metadata"].get("uid")
            )
        except (errors.NotFound, errors.Conflict):
            pass
