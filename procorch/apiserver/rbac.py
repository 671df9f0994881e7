"""The API server's authorizer: ``system:masters``, the Node authorizer, then RBAC.

As kube-apiserver chains them: a user in ``system:masters`` may do everything; a node
(``system:node:<name>``) what the Node authorizer allows it (:func:`~.auth.node_may`);
anyone, nodes included, what the cluster's Roles, ClusterRoles and their bindings grant
(:class:`~procorch.api.rbac.Policy`). The policy is rebuilt from the store after any of the
four RBAC kinds changed, on the next decision, so a binding takes effect as soon as its
write's watch event arrives (milliseconds; Kubernetes' RBAC reads informers the same way).

:meth:`RbacAuthorizer.bootstrap` writes the ClusterRoles and ClusterRoleBindings Kubernetes
bootstraps, and puts back the ones marked ``autoupdate`` at each start.

Concurrency: one task on the API server's loop watches the RBAC kinds; decisions run on the
same loop and never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from procorch.api import errors
from procorch.api.meta import deep_copy
from procorch.api.rbac import Policy, Subject, compact, held
from procorch.api.rbac import policy as bootstrap
from procorch.api.resources import ResourceType, must
from procorch.apiserver.auth import SYSTEM, Attributes, User, node_may, node_name_of
from procorch.kit.logging import get_logger
from procorch.store.base import Event, Key, Store
from procorch.store.follow import follow

if TYPE_CHECKING:
    from procorch.apiserver.verbs_core import ServiceCore

log = get_logger("apiserver.rbac")

ROLES = must("rbac.authorization.k8s.io/roles")
CLUSTER_ROLES = must("rbac.authorization.k8s.io/clusterroles")
ROLE_BINDINGS = must("rbac.authorization.k8s.io/rolebindings")
CLUSTER_ROLE_BINDINGS = must("rbac.authorization.k8s.io/clusterrolebindings")
KINDS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)
ESCALATING = frozenset(rt.key for rt in KINDS)
EVERYTHING = (
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
)


class RbacAuthorizer:
    """See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._policy: Policy | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def allowed(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        if user.is_admin:
            return True, ""
        node = node_name_of(user)
        if node is not None and node_may(node, attrs):
            return True, ""
        reason = self.policy().reason(Subject(user.name, user.groups), attrs)
        return (True, reason) if reason is not None else (False, "")

    def check_escalation(self, user: User, rt: ResourceType, obj: dict[str, Any]) -> None:
        """A user writes a role, or a binding to one, only with every permission it grants
        (or with ``escalate`` on the role, ``bind`` on the bound role), as Kubernetes'
        RBAC registry checks: Forbidden otherwise, naming the permissions not held."""
        if rt.key not in ESCALATING or user.is_admin:
            return
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "") if rt.namespaced else ""
        name = str(meta.get("name") or "")
        if rt.key in (ROLES.key, CLUSTER_ROLES.key):
            if self._may(user, "escalate", rt, namespace, name):
                return
            if rt.key == CLUSTER_ROLES.key and self._aggregates(obj, name):
                # Its rules come from whatever its selectors pick: only someone who holds
                # everything may set or change that (as Kubernetes' ClusterRole registry).
                holding = self.policy().rules_for(Subject(user.name, user.groups), "")
                if not all(held(holding, r) for r in EVERYTHING):
                    raise errors.Forbidden(
                        f'{rt.group_resource} "{name}" is forbidden: must have cluster-admin '
                        "privileges to use the aggregationRule",
                        details={"name": name, "kind": rt.plural, "group": rt.group},
                    )
            granted = [r for r in obj.get("rules") or [] if isinstance(r, dict)]
        else:
            ref = obj.get("roleRef") or {}
            kind, role = str(ref.get("kind") or ""), str(ref.get("name") or "")
            role_rt = CLUSTER_ROLES if kind == "ClusterRole" else ROLES
            if self._may(user, "bind", role_rt, namespace, role):
                return
            found = self.policy().role_rules(kind, namespace, role)
            if found is None:
                raise errors.NotFound(
                    f'{role_rt.group_resource} "{role}" not found',
                    details={"name": role, "kind": role_rt.plural, "group": role_rt.group},
                )
            granted = found
        holding = self.policy().rules_for(Subject(user.name, user.groups), namespace)
        missing = [r for r in granted if not held(holding, r)]
        if not missing:
            return
        groups = " ".join(f'"{g}"' for g in user.groups)
        raise errors.Forbidden(
            f'{rt.group_resource} "{name}" is forbidden: user "{user.name}" '
            f"(groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n"
            + "\n".join(compact(r) for r in missing),
            details={"name": name, "kind": rt.plural, "group": rt.group},
        )

    def _aggregates(self, obj: dict[str, Any], name: str) -> bool:
        """Whether the ClusterRole written, or the one it replaces, has an aggregationRule."""
        if obj.get("aggregationRule"):
            return True
        stored = self.store.get(Key(CLUSTER_ROLES.key, "", name))
        return stored is not None and bool(stored.object.get("aggregationRule"))

    def _may(self, user: User, verb: str, rt: ResourceType, namespace: str, name: str) -> bool:
        attrs = Attributes(
            verb=verb, group=rt.group, resource=rt.plural, namespace=namespace, name=name
        )
        return self.allowed(user, attrs)[0]

    def rules_for(self, user: User, namespace: str) -> list[dict[str, Any]]:
        """The RBAC rules ``user`` holds in ``namespace`` (``can-i --list``)."""
        return self.policy().rules_for(Subject(user.name, user.groups), namespace)

    def policy(self) -> Policy:
        if self._policy is None:
            listed = {rt.key: [s.object for s in self.store.list(rt.key)[0]] for rt in KINDS}
            self._policy = Policy(
                roles=listed[ROLES.key],
                cluster_roles=listed[CLUSTER_ROLES.key],
                role_bindings=listed[ROLE_BINDINGS.key],
                cluster_role_bindings=listed[CLUSTER_ROLE_BINDINGS.key],
            )
        return self._policy

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        revision = self.store.revision
        self._policy = None
        self._tasks = [
            asyncio.create_task(self._watch(rt.key, revision), name=f"apiserver/rbac/{rt.plural}")
            for rt in KINDS
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self, key: str, revision: int) -> None:
        await follow(self.store, key, revision, on_event=self._changed, resync=self._reread)

    async def _changed(self, event: Event) -> None:
        self._policy = None

    async def _reread(self) -> int:
        """The policy is rebuilt from the store at the next decision."""
        self._policy = None
        return self.store.revision

    async def bootstrap(self, service: ServiceCore) -> None:
        """Create Kubernetes' bootstrap roles and bindings, and put back those that still
        say ``autoupdate: "true"`` (what a user changed in them is reverted; a user opts out
        by setting the annotation to ``"false"``)."""
        for rt, objects in (
            (CLUSTER_ROLES, bootstrap.cluster_roles()),
            (CLUSTER_ROLE_BINDINGS, bootstrap.cluster_role_bindings()),
        ):
            missing = []
            for wanted in objects:
                name = wanted["metadata"]["name"]
                try:
                    current = service.get(SYSTEM, rt, "", name).object
                except errors.NotFound:
                    missing.append(wanted)
                    continue
                annotations = current["metadata"].get("annotations") or {}
                if annotations.get(bootstrap.AUTOUPDATE) == "false":
                    continue
                fields = ("rules", "aggregationRule", "roleRef", "subjects")
                labels = current["metadata"].get("labels") or {}
                wanted_labels = wanted["metadata"]["labels"]
                if all(current.get(f) == wanted.get(f) for f in fields) and all(
                    labels.get(k) == v for k, v in wanted_labels.items()
                ):
                    continue
                updated = deep_copy(current)
                for f in fields:
                    if f in wanted:
                        updated[f] = deep_copy(wanted[f])
                updated["metadata"]["labels"] = {**labels, **wanted_labels}
                log.info("putting back a bootstrap RBAC object", kind=rt.kind, name=name)
                await service.update(SYSTEM, rt, "", name, updated)
            # Written together: one commit of the store on a first start.
            await asyncio.gather(*(service.create(SYSTEM, rt, "", o) for o in missing))
