"""The ``eviction`` subresource of pods (policy/v1 Eviction): a deletion that respects
PodDisruptionBudgets, what ``kubectl drain`` sends.

As kube-apiserver's eviction REST does:

* a pod that is Pending, Succeeded, Failed or already being deleted is deleted at once;
* a pod covered by no budget is deleted; by more than one, the eviction fails (500), as
  Kubernetes does not choose between budgets;
* a pod that is not Ready is deleted without spending the budget when the budget is healthy
  (``currentHealthy >= desiredHealthy > 0``; ``unhealthyPodEvictionPolicy: AlwaysAllow``
  always lets it go);
* otherwise the budget must allow a disruption: the eviction takes one from
  ``status.disruptionsAllowed`` and records the pod in ``status.disruptedPods`` (a
  compare-and-swap on the budget, retried on conflict), then deletes the pod with the
  Eviction's ``deleteOptions``. A budget with none left answers 429 TooManyRequests, which
  ``kubectl drain`` retries every 5 s; one the disruption controller has not yet seen at its
  current generation answers 429 too.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.conditions import is_ready
from procorch.api.meta import deep_copy, rfc3339
from procorch.api.resources import must
from procorch.api.selectors import label_selector_from_dict
from procorch.apiserver.auth import User
from procorch.apiserver.options import check_propagation, deletion_from_body
from procorch.apiserver.verbs_common import RETRIES, key_for
from procorch.apiserver.verbs_delete import DeletionVerbs
from procorch.store.base import Stored

PODS = must("core/pods")
PDBS = must("policy/poddisruptionbudgets")

MAX_DISRUPTED_PODS = 2000
"""Kubernetes' ``MaxDisruptedPodSize``: evictions the controller has not confirmed yet."""

VIOLATES_BUDGET = "Cannot evict pod as it would violate the pod's disruption budget."

_SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _budget_exhausted(cause: str) -> errors.TooManyRequests:
    return errors.TooManyRequests(
        VIOLATES_BUDGET, details={"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    )


class EvictionVerbs(DeletionVerbs):
    async def evict(
        self, user: User, namespace: str, name: str, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Evict pod ``name`` as a POST of ``body`` (an Eviction) to its subresource."""
        self.authorize(user, "create", PODS, namespace=namespace, name=name, subresource="eviction")
        if not isinstance(body, dict):
            raise errors.BadRequest("the body of an eviction must be an Eviction object")
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, "", name):
            raise errors.BadRequest("name in URL does not match name in Eviction object")
        raw_options = body.get("deleteOptions") or {}
        if not isinstance(raw_options, dict):
            raise errors.BadRequest("Eviction.deleteOptions must be a DeleteOptions object")
        options = deletion_from_body(raw_options)
        check_propagation(options)
        options.dry_run = options.dry_run or dry_run
        for _attempt in range(RETRIES):
            current = self._get_or_404(PODS, namespace, name)
            pod = current.object
            try:
                if not self._guarded(pod):
                    await self._delete_once(PODS, current, options)
                    return dict(_SUCCESS)
                budget = self._budget_of(pod, namespace)
                if budget is not None and self._spend(pod, budget):
                    if not options.dry_run:
                        await self._record_disruption(budget, name)
                await self._delete_once(PODS, current, options)
            except errors.Conflict:
                if options.precondition_uid is not None or options.precondition_rv is not None:
                    raise
                continue  # the pod or its budget changed under us: look again
            return dict(_SUCCESS)
        raise errors.Conflict.modified(PODS.plural, name, group=PODS.group)

    @staticmethod
    def _guarded(pod: dict[str, Any]) -> bool:
        """Whether budgets apply: not to a pod that is not running yet, is finished, or is
        already being deleted."""
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Pending", "Succeeded", "Failed"):
            return False
        return not (pod.get("metadata") or {}).get("deletionTimestamp")

    def _budget_of(self, pod: dict[str, Any], namespace: str) -> Stored | None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        budgets, _ = self.store.list(PDBS.key, namespace)
        matching = []
        for budget in budgets:
            selector = (budget.object.get("spec") or {}).get("selector")
            try:
                if label_selector_from_dict(selector).matches(labels):
                    matching.append(budget)
            except errors.BadRequest:
                continue  # a budget with an invalid selector selects nothing
        if len(matching) > 1:
            raise errors.InternalError(
                "This pod has more than one PodDisruptionBudget, which the eviction "
                "subresource does not support."
            )
        return matching[0] if matching else None

    @staticmethod
    def _spend(pod: dict[str, Any], budget: Stored) -> bool:
        """Whether evicting ``pod`` spends a disruption of ``budget`` (False: it goes free);
        raises when the budget has none to give."""
        obj = budget.object
        name = obj["metadata"]["name"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        healthy, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
        if not is_ready(pod):
            if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
                return False
            if healthy >= desired > 0:
                return False
        if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
            raise _budget_exhausted(
                f"The disruption budget {name} is still being processed by the server."
            )
        allowed = status.get("disruptionsAllowed", 0)
        if allowed < 0:
            raise errors.Forbidden("pdb disruptions allowed is negative")
        if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
            raise errors.Forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
            )
        if allowed == 0:
            raise _budget_exhausted(
                f"The disruption budget {name} needs {desired} healthy pods and has "
                f"{healthy} currently",
            )
        return True

    async def _record_disruption(self, budget: Stored, pod_name: str) -> None:
        obj = deep_copy(budget.object)
        status = obj.setdefault("status", {})
        status["disruptionsAllowed"] = status.get("disruptionsAllowed", 0) - 1
        status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: rfc3339()}
        meta = obj["metadata"]
        await self.store.update(
            key_for(PDBS, meta.get("namespace", ""), meta["name"]),
            obj,
            expected_rv=budget.revision,
        )
