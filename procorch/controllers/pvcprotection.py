"""PersistentVolumeClaim protection: a claim in use is not removed until its pods are done.

The API server gives every new PersistentVolumeClaim the ``kubernetes.io/pvc-protection``
finalizer (admission, as Kubernetes' StorageObjectInUseProtection). Deleting the claim then
only marks it (``deletionTimestamp``); this controller removes the finalizer, and so lets the
claim go, once no pod in the namespace that is still running or may still run references it:
pods that finished (phase ``Succeeded``/``Failed``) and pods already force-deleted do not
count, as in Kubernetes' pvc-protection controller. Before removing the finalizer it confirms
with a live list of pods, so a pod not yet in the cache cannot lose its volume.

Keys are (namespace, claim name). Concurrency: one worker.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.resources import must
from procorch.reconcile.controller import Controller, key_of

PVCS = must("core/persistentvolumeclaims")
PODS = must("core/pods")
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
_CLAIM_INDEX = "pvc-protection/claim"

Key = tuple[str, str]


def claims_of(pod: dict[str, Any]) -> list[str]:
    """Names of the claims a pod's volumes use (``persistentVolumeClaim`` and the claim
    Kubernetes names ``<pod>-<volume>`` for a generic ephemeral volume)."""
    names = []
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict) and claim.get("claimName"):
            names.append(str(claim["claimName"]))
        elif isinstance(volume.get("ephemeral"), dict):
            names.append(f"{pod_name}-{volume.get('name')}")
    return names


def _claim_keys(pod: dict[str, Any]) -> list[str]:
    return [f"{key_of(pod)[0]}/{c}" for c in claims_of(pod)]


def still_uses_claims(pod: dict[str, Any]) -> bool:
    """Whether a pod may still have its volumes in use: not finished and not force-deleted."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    return not (meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == 0)


class PVCProtectionController(Controller[Key]):
    name = "pvc-protection"

    def setup(self) -> None:
        self.watch(PVCS).add_handler(self._on_claim)
        pods = self.watch(PODS)
        pods.add_index(_CLAIM_INDEX, _claim_keys)
        pods.add_handler(self._on_pod)

    def _on_claim(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = obj.get("metadata") or {}
        if (
            etype != "DELETED"
            and meta.get("deletionTimestamp")
            and PVC_PROTECTION_FINALIZER in (meta.get("finalizers") or [])
        ):
            self.queue.add(key_of(obj))

    def _on_pod(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        # Any pod change may release a claim (it finished, or it is gone).
        namespace = key_of(obj)[0]
        for pod in (obj, old):
            if pod is not None:
                for claim in claims_of(pod):
                    self.queue.add((namespace, claim))

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        claim = self.informers.get(PVCS).get(name, namespace)
        if claim is None:
            return None
        meta = claim["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp") or PVC_PROTECTION_FINALIZER not in finalizers:
            return None
        cached = self.informers.get(PODS).by_index(_CLAIM_INDEX, f"{namespace}/{name}")
        if any(still_uses_claims(p) for p in cached):
            return None  # a pod event brings the claim back here
        live = await self.client.list(PODS, namespace=namespace)
        if any(still_uses_claims(p) and name in claims_of(p) for p in live.items):
            return None
        remaining = [f for f in finalizers if f != PVC_PROTECTION_FINALIZER]
        patch = {
            "metadata": {
                "finalizers": remaining or None,
                "resourceVersion": meta["resourceVersion"],
            }
        }
        try:
            await self.client.patch(
                PVCS,
                name,
                patch,
                namespace=namespace,
                patch_type="merge",
                field_manager="pvc-protection-controller",
            )
        except errors.NotFound:
            return None
        self.log.info("claim no longer in use; protection removed", namespace=namespace, claim=name)
        return None
