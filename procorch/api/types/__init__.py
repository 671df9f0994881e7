"""The pydantic models of the Kubernetes objects procorch serves, one module per group.

Each served kind's model is part of its definition in :mod:`procorch.api.registry` (look a
kind's model up there, with :func:`procorch.api.registry.model_for`). The bodies that are not
kinds of their own, those of subresources and options (``Scale``, ``Binding``, ``Eviction``,
``DeleteOptions``), are here. Pure data.
"""

from __future__ import annotations

from procorch.api.types.authentication import TokenRequest
from procorch.api.types.autoscaling import Scale
from procorch.api.types.base import K8sModel
from procorch.api.types.core import Binding
from procorch.api.types.meta import DeleteOptions
from procorch.api.types.policy import Eviction

BODY_MODELS: dict[tuple[str, str], type[K8sModel]] = {
    ("v1", "Binding"): Binding,
    ("autoscaling/v1", "Scale"): Scale,
    ("policy/v1", "Eviction"): Eviction,
    ("authentication.k8s.io/v1", "TokenRequest"): TokenRequest,
}

# Kinds Kubernetes registers in every group version (metav1.AddToGroupVersion), so a DELETE
# body says ``apiVersion: v1``, ``meta.k8s.io/v1`` or the resource's own group version.
_ANY_VERSION: dict[str, type[K8sModel]] = {"DeleteOptions": DeleteOptions}


def model_for_body(api_version: str, kind: str) -> type[K8sModel] | None:
    """The model of a subresource's or an option's body; ``None`` for anything else."""
    return BODY_MODELS.get((api_version, kind)) or _ANY_VERSION.get(kind)
