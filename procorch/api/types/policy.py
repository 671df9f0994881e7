"""policy/v1 kind: Eviction, the body POSTed to a pod's ``eviction`` subresource.

Pure data.
"""

from __future__ import annotations

from procorch.api.types.base import K8sObject
from procorch.api.types.meta import DeleteOptions


class Eviction(K8sObject):
    deleteOptions: DeleteOptions | None = None
