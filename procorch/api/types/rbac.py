"""rbac.authorization.k8s.io/v1 kinds: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Pure data.
"""

from __future__ import annotations

from typing import Annotated

from procorch.api.schema import Atomic
from procorch.api.types.base import K8sModel, K8sObject, LabelSelectorAtomic


class PolicyRule(K8sModel):
    verbs: list[str] | None = None  # +listType=atomic
    apiGroups: list[str] | None = None  # +listType=atomic
    resources: list[str] | None = None  # +listType=atomic
    resourceNames: list[str] | None = None  # +listType=atomic
    nonResourceURLs: list[str] | None = None  # +listType=atomic


class Subject(K8sModel):  # +structType=atomic
    kind: str | None = None
    apiGroup: str | None = None
    name: str | None = None
    namespace: str | None = None


class RoleRef(K8sModel):  # +structType=atomic
    apiGroup: str | None = None
    kind: str | None = None
    name: str | None = None


SubjectAtomic = Annotated[Subject, Atomic()]
RoleRefAtomic = Annotated[RoleRef, Atomic()]


class AggregationRule(K8sModel):
    clusterRoleSelectors: list[LabelSelectorAtomic] | None = None  # +listType=atomic


class Role(K8sObject):
    rules: list[PolicyRule] | None = None  # +listType=atomic


class ClusterRole(K8sObject):
    rules: list[PolicyRule] | None = None  # +listType=atomic
    aggregationRule: AggregationRule | None = None


class RoleBinding(K8sObject):
    subjects: list[SubjectAtomic] | None = None  # +listType=atomic
    roleRef: RoleRefAtomic | None = None


class ClusterRoleBinding(K8sObject):
    subjects: list[SubjectAtomic] | None = None  # +listType=atomic
    roleRef: RoleRefAtomic | None = None
