"""Per-namespace defaults: the ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap.

Kubernetes' ServiceAccounts controller and root-CA publisher, as one level-based controller
keyed by namespace. In every active namespace it makes sure that

* the ServiceAccount ``default`` exists (pods are defaulted to ``serviceAccountName:
  default``), recreated if someone deletes it;
* the ConfigMap ``kube-root-ca.crt`` exists with ``ca.crt`` = the API server's CA certificate
  (PEM) and Kubernetes' ``kubernetes.io/description`` annotation, recreated if deleted and put
  back if edited.

A namespace being deleted is left alone (creating into it is refused anyway).

Concurrency: one worker; handlers only enqueue namespace names.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.client.base import Client
from procorch.reconcile.controller import Controller
from procorch.reconcile.factory import InformerFactory

NAMESPACES = must("core/namespaces")
SERVICE_ACCOUNTS = must("core/serviceaccounts")
CONFIGMAPS = must("core/configmaps")

DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


class ServiceAccountController(Controller[str]):
    name = "serviceaccount"

    def __init__(self, client: Client, informers: InformerFactory, *, ca_pem: bytes | str) -> None:
        super().__init__(client, informers)
        self.ca_pem = ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem

    def setup(self) -> None:
        self.watch(NAMESPACES).add_handler(self._on_namespace)
        self.watch(SERVICE_ACCOUNTS).add_handler(self._on_named(DEFAULT_SERVICE_ACCOUNT))
        self.watch(CONFIGMAPS).add_handler(self._on_named(ROOT_CA_CONFIGMAP))

    def _on_namespace(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if etype != "DELETED":
            self.queue.add(str(obj["metadata"]["name"]))

    def _on_named(self, name: str) -> Any:
        def handle(etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            meta = obj.get("metadata") or {}
            if meta.get("name") == name:
                self.queue.add(str(meta.get("namespace") or ""))

        return handle

    async def reconcile(self, key: str) -> float | None:
        ns = self.informers.get(NAMESPACES).get(key)
        if ns is None or not _active(ns):
            return None
        try:
            await self._ensure_service_account(key)
            await self._ensure_root_ca(key)
        except errors.NotFound:
            return None  # the namespace went away meanwhile
        except errors.Forbidden as exc:
            causes = (exc.details or {}).get("causes") or []
            if any(c.get("reason") == "NamespaceTerminating" for c in causes):
                return None  # being deleted meanwhile: no new content may go in
            raise
        return None

    async def _ensure_service_account(self, namespace: str) -> None:
        if self.informers.get(SERVICE_ACCOUNTS).get(DEFAULT_SERVICE_ACCOUNT, namespace):
            return
        body = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
        }
        try:
            await self.client.create(SERVICE_ACCOUNTS, body, namespace=namespace)
        except errors.AlreadyExists:
            return  # the cache lags behind: it is there
        self.log.info("created the default service account", namespace=namespace)

    async def _ensure_root_ca(self, namespace: str) -> None:
        data = {ROOT_CA_KEY: self.ca_pem}
        current = self.informers.get(CONFIGMAPS).get(ROOT_CA_CONFIGMAP, namespace)
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ROOT_CA_CONFIGMAP,
                    "namespace": namespace,
                    "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
                },
                "data": data,
            }
            try:
                await self.client.create(CONFIGMAPS, body, namespace=namespace)
            except errors.AlreadyExists:
                return
            self.log.info("published the root CA", namespace=namespace)
            return
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
            return
        meta = dict(current["metadata"])
        meta["annotations"] = {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}
        # Compare-and-swap on the cached resourceVersion: a Conflict requeues from fresh state.
        await self.client.update(
            CONFIGMAPS, {**current, "metadata": meta, "data": data}, namespace=namespace
        )
        self.log.info("restored the root CA", namespace=namespace)


def _active(ns: dict[str, Any]) -> bool:
    if (ns.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (ns.get("status") or {}).get("phase", "Active") == "Active"
