"""Binding PersistentVolumeClaims to local storage, as k3s's local-path provisioner does.

procorch has no PersistentVolume objects: a claim is storage on the node that runs its pod
(a directory under ``<data-dir>/nodes/<node>/pvc/``, made by the agent at first use and kept
after the pod). This controller does the API side at once (``Immediate`` binding): a Pending
claim gets ``spec.volumeName: pvc-<uid>`` and ``status`` Bound with the requested capacity and
access modes, which is what ``kubectl get pvc`` shows and what workloads wait for.

Keys are (namespace, claim name). Concurrency: one worker.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.reconcile.controller import Controller, key_of

PVCS = must("core/persistentvolumeclaims")

Key = tuple[str, str]


class PVCBinder(Controller[Key]):
    name = "pvc-binder"

    def setup(self) -> None:
        self.watch(PVCS).add_handler(self._on_claim)

    def _on_claim(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if etype != "DELETED" and (obj.get("status") or {}).get("phase") != "Bound":
            self.queue.add(key_of(obj))

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        claim = self.informers.get(PVCS).get(name, namespace)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return None
        if (claim.get("status") or {}).get("phase") == "Bound":
            return None
        spec = claim.get("spec") or {}
        volume = spec.get("volumeName") or f"pvc-{claim['metadata']['uid']}"
        if not spec.get("volumeName"):
            claim = await self.client.patch(
                PVCS, name, {"spec": {"volumeName": volume}}, namespace=namespace
            )
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        status: dict[str, Any] = {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        }
        if requested:
            status["capacity"] = {"storage": requested}
        try:
            await self.client.patch(
                PVCS, name, {"status": status}, namespace=namespace, subresource="status"
            )
        except errors.NotFound:
            return None
        self.log.info("claim bound", namespace=namespace, claim=name, volume=volume)
        return None
