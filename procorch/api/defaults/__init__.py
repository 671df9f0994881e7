"""Kubernetes 1.32 defaulting (``SetDefaults_*``) for every served kind.

Each defaulter fills in, in place, what Kubernetes fills in when it decodes a request body:
on every create and update, before validation. It only sets fields that are absent (or
empty, where Kubernetes checks for the zero value), so applying it twice changes nothing.
Kinds Kubernetes does not default (Ingress, ConfigMap, ServiceAccount, Event, Lease, Role,
ClusterRole) have none. Which defaulter a kind has is part of its definition in
:mod:`procorch.api.registry`, and :func:`procorch.api.registry.apply_defaults` runs it.

Create-only steps of Kubernetes' registry strategies (namespace finalizers, initial status)
are :mod:`procorch.api.strategy`'s; :func:`generate_job_selector` is provided for the Job one
because it needs the rules kept here. Pure data.
"""

from __future__ import annotations

from procorch.api.defaults.pod import image_pull_policy
from procorch.api.defaults.workloads import generate_job_selector

__all__ = ["generate_job_selector", "image_pull_policy"]
