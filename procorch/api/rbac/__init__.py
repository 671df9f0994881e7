"""Role-based access control as kube-apiserver's RBAC authorizer decides it. Pure data.

* :mod:`.rules`: whether one ``PolicyRule`` covers a request (verbs, API groups, resources
  with subresources and ``*``, resource names, non-resource URLs with a trailing ``*``);
* :mod:`.policy`: the ClusterRoles and ClusterRoleBindings Kubernetes bootstraps
  (``cluster-admin``, ``admin``, ``edit``, ``view``, ``system:discovery``...);
* :mod:`.index`: the roles and bindings of a cluster, indexed by subject, so that a decision
  looks at the bindings of the asking user and its groups only, never at every binding.
"""

from procorch.api.rbac.index import Policy, Subject
from procorch.api.rbac.rules import Request, compact, covers, held, rule_covers

__all__ = ["Policy", "Request", "Subject", "compact", "covers", "held", "rule_covers"]
