"""A cluster's roles and bindings, indexed by subject, and the decisions they make.

:class:`Policy` is built from the four RBAC kinds' objects as stored. A decision for a user
looks up the ClusterRoleBindings naming the user or one of its groups, then the RoleBindings
naming them in the request's namespace, and checks the rules of the roles those refer to: the
cost grows with what the user is bound to, not with the number of bindings in the cluster.
An aggregated ClusterRole's rules are those of the ClusterRoles its selectors pick (as the
aggregation controller would write them), resolved once when the policy is built. A binding to
a role that does not exist grants nothing. Pure data; a built policy is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from procorch.api import errors
from procorch.api.rbac.rules import Request, Rule
from procorch.api.selectors import label_selector_from_dict

Obj = dict[str, Any]
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Subject:
    """Who asks: a user name and its groups (``system:serviceaccount:<ns>:<name>`` for a
    ServiceAccount)."""

    user: str
    groups: tuple[str, ...] = ()

    def keys(self) -> list[tuple[str, str]]:
        return [("User", self.user), *(("Group", g) for g in self.groups)]


def _subject_key(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str] | None:
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return ("User", f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}")
    if kind in ("User", "Group"):
        return (str(kind), name)
    return None


def _rules(obj: Mapping[str, Any]) -> list[Obj]:
    rules = obj.get("rules")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class Policy:
    """The decisions of one set of roles and bindings (see the module docstring)."""

    def __init__(
        self,
        *,
        roles: Iterable[Obj] = (),
        cluster_roles: Iterable[Obj] = (),
        role_bindings: Iterable[Obj] = (),
        cluster_role_bindings: Iterable[Obj] = (),
    ) -> None:
        self._role_rules: dict[tuple[str, str], list[Obj]] = {
            (str(_meta(r).get("namespace") or ""), str(_meta(r).get("name") or "")): _rules(r)
            for r in roles
        }
        self._cluster_rules = _aggregated(list(cluster_roles))
        # The same rules made ready for decisions, once.
        self._role_compiled = {k: _compiled(v) for k, v in self._role_rules.items()}
        self._cluster_compiled = {k: _compiled(v) for k, v in self._cluster_rules.items()}
        # subject -> the ClusterRoles bound to it cluster-wide, and by which bindings
        self._cluster_bound: dict[tuple[str, str], set[_Grant]] = {}
        for binding in cluster_role_bindings:
            grant = _grant(binding, "ClusterRoleBinding")
            if grant.role_kind != "ClusterRole":
                continue
            for key in self._subjects(binding, ""):
                self._cluster_bound.setdefault(key, set()).add(grant)
        # (namespace, subject) -> the roles bound to it there
        self._bound: dict[tuple[str, tuple[str, str]], set[_Grant]] = {}
        for binding in role_bindings:
            namespace = str(_meta(binding).get("namespace") or "")
            grant = _grant(binding, "RoleBinding")
            for key in self._subjects(binding, namespace):
                self._bound.setdefault((namespace, key), set()).add(grant)

    @staticmethod
    def _subjects(binding: Obj, namespace: str) -> list[tuple[str, str]]:
        subjects = binding.get("subjects")
        if not isinstance(subjects, list):
            return []
        found = (_subject_key(s, namespace) for s in subjects if isinstance(s, Mapping))
        return [key for key in found if key is not None]

    def _grants(self, subject: Subject, namespace: str) -> Iterable[tuple[_Grant, tuple[str, str]]]:
        """Each binding of ``subject`` that counts in ``namespace``, with the subject key it
        names."""
        keys = subject.keys()
        for key in keys:
            for grant in self._cluster_bound.get(key, ()):
                yield grant, key
        if not namespace:
            return
        for key in keys:
            for grant in self._bound.get((namespace, key), ()):
                yield grant, key

    def _rule_sets(
        self, subject: Subject, namespace: str
    ) -> Iterable[tuple[_Grant, tuple[str, str], list[Obj]]]:
        for grant, key in self._grants(subject, namespace):
            if grant.role_kind == "ClusterRole":
                yield grant, key, self._cluster_rules.get(grant.role, [])
            elif grant.role_kind == "Role":
                yield grant, key, self._role_rules.get((namespace, grant.role), [])

    def allows(self, subject: Subject, request: Request) -> bool:
        """Whether a binding of ``subject`` grants ``request`` (in its namespace, or
        cluster-wide)."""
        return self.reason(subject, request) is not None

    def reason(self, subject: Subject, request: Request) -> str | None:
        """Why ``request`` is allowed, in Kubernetes' words (``RBAC: allowed by RoleBinding
        "x/ns" of ClusterRole "view" to User "alice"``); ``None`` when nothing grants it."""
        for grant, (kind, name) in self._grants(subject, request.namespace):
            if grant.role_kind == "ClusterRole":
                rules = self._cluster_compiled.get(grant.role, ())
            elif grant.role_kind == "Role":
                rules = self._role_compiled.get((request.namespace, grant.role), ())
            else:
                continue
            if any(rule.covers(request) for rule in rules):
                return (
                    f'RBAC: allowed by {grant.binding_kind} "{grant.binding}" of '
                    f'{grant.role_kind} "{grant.role}" to {kind} "{name}"'
                )
        return None

    def role_rules(self, kind: str, namespace: str, name: str) -> list[Obj] | None:
        """The rules of the Role ``namespace/name`` or the ClusterRole ``name`` (aggregated);
        ``None`` when it does not exist."""
        if kind == "ClusterRole":
            return self._cluster_rules.get(name)
        if kind == "Role":
            return self._role_rules.get((namespace, name))
        return None

    def rules_for(self, subject: Subject, namespace: str) -> list[Obj]:
        """Every rule ``subject`` holds in ``namespace`` (cluster-wide ones included), as
        ``SelfSubjectRulesReview`` lists them."""
        out: list[Obj] = []
        for _grant, _key, rules in self._rule_sets(subject, namespace):
            out.extend(r for r in rules if r not in out)
        return out


@dataclass(frozen=True)
class _Grant:
    """One binding's reference to a role."""

    binding_kind: str
    binding: str  # "name" of a ClusterRoleBinding, "name/namespace" of a RoleBinding
    role_kind: str
    role: str


def _grant(binding: Obj, kind: str) -> _Grant:
    meta = _meta(binding)
    name = str(meta.get("name") or "")
    if kind == "RoleBinding":
        name = f"{name}/{meta.get('namespace') or ''}"
    ref = binding.get("roleRef")
    ref = ref if isinstance(ref, Mapping) else {}
    return _Grant(kind, name, str(ref.get("kind") or ""), str(ref.get("name") or ""))


def _compiled(rules: list[Obj]) -> tuple[Rule, ...]:
    return tuple(Rule.of(r) for r in rules)


def _aggregated(cluster_roles: list[Obj]) -> dict[str, list[Obj]]:
    """Each ClusterRole's rules, an aggregated one's being the rules of every ClusterRole its
    ``aggregationRule`` selects (transitively; a cycle adds nothing twice)."""
    by_name = {str(_meta(r).get("name") or ""): r for r in cluster_roles}
    resolved: dict[str, list[Obj]] = {}

    def resolve(name: str, visiting: frozenset[str]) -> list[Obj]:
        if name in resolved:
            return resolved[name]
        role = by_name[name]
        aggregation = role.get("aggregationRule")
        if not isinstance(aggregation, Mapping):
            resolved[name] = _rules(role)
            return resolved[name]
        rules: list[Obj] = []
        for selector in aggregation.get("clusterRoleSelectors") or []:
            try:
                compiled = label_selector_from_dict(selector)
            except errors.ApiError:
                continue
            for other, candidate in sorted(by_name.items()):
                if other == name or other in visiting:
                    continue
                if compiled.matches(_meta(candidate).get("labels") or {}):
                    rules.extend(r for r in resolve(other, visiting | {name}) if r not in rules)
        resolved[name] = rules
        return rules

    for name in by_name:
        resolve(name, frozenset())
    return resolved
