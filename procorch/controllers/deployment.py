"""The Deployment controller: a Deployment's ReplicaSets, its revisions, scaling, and status.

Kubernetes' ``DeploymentController.syncDeployment``, reconcile by reconcile:

1. Claim ReplicaSets: orphans matching the selector are adopted, ReplicaSets that stop
   matching are released (:mod:`.workloads_refs`).
2. A Deployment being deleted only gets its status refreshed; a paused one, or one whose
   ``spec.replicas`` changed (its active ReplicaSets' ``desired-replicas`` annotation says
   so), is scaled proportionally across its ReplicaSets without rolling anything out.
3. Otherwise it rolls out by its strategy (:mod:`.rollout`): the *new* ReplicaSet is the one
   whose template equals the Deployment's, ``pod-template-hash`` aside (reused, with its
   revision raised to the highest + 1, when ``rollout undo`` brings an old template back);
   it is created as ``<deployment>-<hash>`` when there is none.
4. Status is always written: ``observedGeneration``, ``replicas``, ``updatedReplicas``,
   ``readyReplicas``, ``availableReplicas``, ``unavailableReplicas``, and the Progressing,
   Available and ReplicaFailure conditions that ``kubectl rollout status`` reads.

The revision (``deployment.kubernetes.io/revision``) lives in metadata, which a status write
cannot change here, so it is written by a merge patch guarded by the resourceVersion. Every
write made during a reconcile refreshes the working copies, so later writes in the same
reconcile carry the current resourceVersion.

Concurrency: ``workers`` reconciles at once, never two for the same Deployment.
"""

from __future__ import annotations

from typing import Any

from procorch.api import errors
from procorch.api.meta import controller_ref, deep_copy, now, owner_ref
from procorch.api.resources import must
from procorch.api.selectors import LabelSelector, label_selector_from_dict
from procorch.client.base import Client
from procorch.client.events import EventRecorder
from procorch.controllers import deployment_scale, rollout
from procorch.controllers import deployment_util as du
from procorch.controllers.podcontrol import namespace_terminating
from procorch.controllers.workloads_refs import (
    CONTROLLER_INDEX,
    RefManager,
    controller_index,
)
from procorch.reconcile.controller import Controller, PermanentError, key_of
from procorch.reconcile.factory import InformerFactory

DEPLOYMENTS = must("apps/deployments")
REPLICASETS = must("apps/replicasets")
PODS = must("core/pods")
FIELD_MANAGER = "deployment-controller"

Obj = dict[str, Any]
Key = tuple[str, str]


def deployment_selector(d: Obj) -> LabelSelector:
    try:
        return label_selector_from_dict((d.get("spec") or {}).get("selector"))
    except errors.BadRequest as exc:
        raise PermanentError(f"invalid selector: {exc.message}") from exc


class DeploymentController(Controller[Key]):
    name = "deployment"
    component = "deployment-controller"
    workers = 4

    def __init__(
        self, client: Client, informers: InformerFactory, *, events: EventRecorder | None = None
    ) -> None:
        super().__init__(client, informers, events=events)

    def setup(self) -> None:
        self.deployments = self.watch(DEPLOYMENTS)
        self.replica_sets = self.watch(REPLICASETS)
        self.pods = self.watch(PODS)
        self.replica_sets.add_index(CONTROLLER_INDEX, controller_index)
        self.pods.add_index(CONTROLLER_INDEX, controller_index)
        self.deployments.add_handler(lambda etype, obj, old: self.queue.add(key_of(obj)))
        self.replica_sets.add_handler(self._on_replica_set)
        self.pods.add_handler(self._on_pod)

    # -- event handlers (enqueue only) -------------------------------------------------------

    def _owner(self, obj: Obj, ref: Obj | None) -> Key | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        d = self.deployments.get(str(ref.get("name")), namespace)
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return namespace, str(ref.get("name"))

    def _matching(self, rs: Obj) -> list[Key]:
        meta = rs.get("metadata") or {}
        out = []
        for d in self.deployments.list(str(meta.get("namespace") or "")):
            try:
                selector = deployment_selector(d)
            except PermanentError:
                continue
            if not selector.empty and selector.matches(meta.get("labels")):
                out.append(key_of(d))
        return out

    def _on_replica_set(self, etype: str, rs: Obj, old: Obj | None) -> None:
        ref = controller_ref(rs)
        if etype == "DELETED" or old is None or (rs.get("metadata") or {}).get("deletionTimestamp"):
            key = self._owner(rs, ref)
            if key is not None:
                self.queue.add(key)
            elif ref is None and etype != "DELETED":
                for key in self._matching(rs):
                    self.queue.add(key)
            return
        old_ref = controller_ref(old)
        ref_changed = (old_ref or {}).get("uid") != (ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            previous = self._owner(old, old_ref)
            if previous is not None:
                self.queue.add(previous)
        if ref is not None:
            key = self._owner(rs, ref)
            if key is not None:
                self.queue.add(key)
            return
        labels_changed = (old.get("metadata") or {}).get("labels") != rs["metadata"].get("labels")
        if labels_changed or ref_changed:
            for key in self._matching(rs):
                self.queue.add(key)

    def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        # A Recreate rollout waits for the old pods to be gone.
        if etype != "DELETED":
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        namespace = str(pod["metadata"].get("namespace") or "")
        rs = self.replica_sets.get(str(ref.get("name")), namespace)
        if rs is None:
            return
        key = self._owner(rs, controller_ref(rs))
        if key is None:
            return
        d = self.deployments.get(key[1], namespace)
        if d is not None and not du.is_rolling(d):
            self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        cached = self.deployments.get(name, namespace)
        if cached is None:
            return None
        d = deep_copy(cached)
        d.setdefault("status", {})
        selector = deployment_selector(d)
        if selector.empty:
            self.events.event(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            if int(d["status"].get("observedGeneration") or 0) < int(d["metadata"]["generation"]):
                await self.write_status(
                    d, {**d["status"], "observedGeneration": d["metadata"]["generation"]}
                )
            return None
        rs_list = await self.claim_replica_sets(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self.get_all_replica_sets(d, rs_list, create=False)
            await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)
            return None
        await self.check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            return await self.sync(d, rs_list)
        if await self.is_scaling_event(d, rs_list):
            return await self.sync(d, rs_list)
        if du.is_rolling(d):
            return await rollout.rolling(self, d, rs_list)
        return await rollout.recreate(self, d, rs_list, self.pod_map(rs_list))

    async def claim_replica_sets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        meta = d["metadata"]
        candidates = self.replica_sets.by_index(CONTROLLER_INDEX, str(meta.get("uid")))
        candidates += self.replica_sets.by_index(
            CONTROLLER_INDEX, f"orphan:{meta.get('namespace') or ''}"
        )
        refs = RefManager(
            self.client,
            owner=d,
            owner_rt=DEPLOYMENTS,
            dependent_rt=REPLICASETS,
            matches=lambda rs: selector.matches((rs.get("metadata") or {}).get("labels")),
            field_manager=FIELD_MANAGER,
        )
        # Working copies: scaling updates them in place so every list sees the new sizes.
        return [deep_copy(rs) for rs in await refs.claim(candidates)]

    def pod_map(self, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        return {
            str(rs["metadata"]["uid"]): self.pods.by_index(
                CONTROLLER_INDEX, str(rs["metadata"]["uid"])
            )
            for rs in rs_list
        }

    # -- writes ------------------------------------------------------------------------------

    async def write_status(self, d: Obj, status: Obj) -> None:
        """UpdateStatus; ``d`` takes the stored metadata and status."""
        fresh = await self.client.update_status(
            DEPLOYMENTS, {**d, "status": status}, namespace=d["metadata"]["namespace"]
        )
        d["metadata"] = fresh["metadata"]
        d["status"] = fresh.get("status") or {}

    async def set_revision(self, d: Obj, value: str) -> bool:
        """Record the revision annotation on the Deployment; True if it changed."""
        annotations = d["metadata"].get("annotations") or {}
        if annotations.get(du.REVISION) == value:
            return False
        fresh = await self.client.patch(
            DEPLOYMENTS,
            d["metadata"]["name"],
            {
                "metadata": {
                    "annotations": {du.REVISION: value},
                    "resourceVersion": d["metadata"]["resourceVersion"],
                }
            },
            namespace=d["metadata"]["namespace"],
            patch_type="merge",
            field_manager=FIELD_MANAGER,
        )
        d["metadata"] = fresh["metadata"]
        return True

    async def update_replica_set(self, rs: Obj) -> Obj:
        """Update ``rs`` and refresh the working copy in place."""
        fresh = await self.client.update(
            REPLICASETS, rs, namespace=rs["metadata"]["namespace"], field_manager=FIELD_MANAGER
        )
        rs.clear()
        rs.update(fresh)
        return rs

    # -- revisions and the new ReplicaSet ----------------------------------------------------

    async def get_all_replica_sets(
        self, d: Obj, rs_list: list[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, old ReplicaSets), revisions synced."""
        existing = self.find_new(d, rs_list)
        old_rss = [rs for rs in rs_list if rs is not existing]
        new_rs = await self.get_new_replica_set(d, existing, old_rss, create=create)
        return new_rs, old_rss

    @staticmethod
    def find_new(d: Obj, rs_list: list[Obj]) -> Obj | None:
        template = (d.get("spec") or {}).get("template")
        for rs in sorted(rs_list, key=du.created_key):
            if du.equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
                return rs  # the oldest, should there be several
        return None

    async def get_new_replica_set(
        self, d: Obj, existing: Obj | None, old_rss: list[Obj], *, create: bool
    ) -> Obj | None:
        new_revision = du.max_revision(old_rss) + 1
        spec = d.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        max_total = du.replicas_of(d) + du.max_surge(d)
        if existing is not None:
            candidate = deep_copy(existing)
            changed = du.set_new_rs_annotations(
                d, candidate, new_revision, exists=True, max_replicas=max_total
            )
            if changed or int(candidate["spec"].get("minReadySeconds") or 0) != min_ready:
                candidate["spec"]["minReadySeconds"] = min_ready
                existing.clear()
                existing.update(candidate)
                return await self.update_replica_set(existing)
            await self.set_revision(d, du.annotations_of(existing).get(du.REVISION, ""))
            if du.has_progress_deadline(d) and du.get_condition(d["status"], "Progressing") is None:
                du.set_condition(
                    d["status"],
                    du.new_condition(
                        "Progressing",
                        "True",
                        du.FOUND_NEW_RS,
                        f'Found new replica set "{existing["metadata"]["name"]}"',
                        now(),
                    ),
                )
                await self.write_status(d, d["status"])
            return existing
        if not create:
            return None
        return await self._create_new_replica_set(d, old_rss, new_revision, max_total, min_ready)

    async def _create_new_replica_set(
        self, d: Obj, old_rss: list[Obj], new_revision: int, max_total: int, min_ready: int
    ) -> Obj:
        meta = d["metadata"]
        template = deep_copy((d.get("spec") or {}).get("template") or {})
        collisions = (d.get("status") or {}).get("collisionCount")
        pod_hash = du.template_hash(template, collisions)
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            du.HASH_LABEL: pod_hash,
        }
        selector = deep_copy((d.get("spec") or {}).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.HASH_LABEL: pod_hash}
        name = f"{meta['name']}-{pod_hash}"
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "ownerReferences": [owner_ref(d)],
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": min_ready,
                "selector": selector,
                "template": template,
            },
        }
        replicas = du.new_rs_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = replicas
        du.set_new_rs_annotations(d, new_rs, new_revision, exists=False, max_replicas=max_total)
        already_existed = False
        try:
            created = await self.client.create(
                REPLICASETS, new_rs, namespace=meta["namespace"], field_manager=FIELD_MANAGER
            )
        except errors.AlreadyExists:
            found = self.replica_sets.get(name, meta["namespace"])
            if found is None:
                found = await self.client.get(REPLICASETS, name, namespace=meta["namespace"])
            if du.controlled_by(found, d) and du.equal_ignore_hash(
                (found.get("spec") or {}).get("template"), (d.get("spec") or {}).get("template")
            ):
                created, already_existed = deep_copy(found), True
            else:
                # A hash collision: another template hashed to this name. Try the next count.
                status = {**d["status"], "collisionCount": int(collisions or 0) + 1}
                await self.write_status(d, status)
                self.log.info("pod template hash collision", deployment=meta["name"], rs=name)
                raise
        except errors.ApiError as exc:
            if namespace_terminating(exc):
                raise
            message = f'Failed to create new replica set "{name}": {exc.message}'
            if du.has_progress_deadline(d):
                du.set_condition(
                    d["status"],
                    du.new_condition("Progressing", "False", du.FAILED_RS_CREATE, message, now()),
                )
                try:
                    await self.write_status(d, d["status"])
                except errors.ApiError:
                    pass  # the creation failure is the news
            self.events.event(d, "Warning", du.FAILED_RS_CREATE, message)
            raise
        if not already_existed and replicas > 0:
            self.events.event(
                d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas}"
            )
        await self.set_revision(d, str(new_revision))
        if not already_existed and du.has_progress_deadline(d):
            du.set_condition(
                d["status"],
                du.new_condition(
                    "Progressing",
                    "True",
                    du.NEW_RS_CREATED,
                    f'Created new replica set "{name}"',
                    now(),
                ),
            )
            await self.write_status(d, d["status"])
        return created

    # -- scaling -----------------------------------------------------------------------------

    async def scale_replica_set(self, rs: Obj, size: int, d: Obj, operation: str = "") -> bool:
        """Set ``rs``'s size (and replica annotations); True if its size changed."""
        old = du.replicas_of(rs)
        desired, max_total = du.replicas_of(d), du.replicas_of(d) + du.max_surge(d)
        size_changes = old != size
        if not size_changes and not du.replicas_annotations_need_update(rs, desired, max_total):
            return False
        rs["spec"]["replicas"] = size
        du.set_replicas_annotations(rs, desired, max_total)
        await self.update_replica_set(rs)
        if size_changes:
            operation = operation or ("up" if size > old else "down")
            self.events.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {operation} replica set {rs['metadata']['name']} from {old} to {size}",
            )
        return size_changes

    async def is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self.get_all_replica_sets(d, rs_list, create=False)
        for rs in du.active([*old_rss, new_rs]):
            desired = du.desired_replicas_annotation(rs)
            if desired is not None and desired != du.replicas_of(d):
                return True
        return False

    async def sync(self, d: Obj, rs_list: list[Obj]) -> float | None:
        """Scale (a paused Deployment, or a scaling event) and refresh status."""
        new_rs, old_rss = await self.get_all_replica_sets(d, rs_list, create=False)
        await deployment_scale.scale(self, d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await deployment_scale.cleanup(self, old_rss, d)
        await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)
        return None

    async def sync_deployment_status(
        self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj
    ) -> None:
        status = du.calculate_status(all_rss, new_rs, d, now())
        if status != d["status"]:
            await self.write_status(d, status)

    async def check_paused_conditions(self, d: Obj) -> None:
        """A paused Deployment says so in Progressing (and must not time out meanwhile)."""
        if not du.has_progress_deadline(d):
            return
        cond = du.get_condition(d["status"], "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        paused = bool((d.get("spec") or {}).get("paused"))
        has_paused = cond is not None and cond.get("reason") == du.PAUSED
        if paused and not has_paused:
            new = du.new_condition(
                "Progressing", "Unknown", du.PAUSED, "Deployment is paused", now()
            )
        elif not paused and has_paused:
            new = du.new_condition(
                "Progressing", "Unknown", du.RESUMED, "Deployment is resumed", now()
            )
        else:
            return
        du.set_condition(d["status"], new)
        await self.write_status(d, d["status"])
