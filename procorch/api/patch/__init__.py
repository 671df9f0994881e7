"""PATCH semantics and server-side apply.

* :func:`json_merge_patch`: RFC 7386 (``application/merge-patch+json``);
* :func:`json_patch`: RFC 6902 (``application/json-patch+json``);
* :func:`strategic_merge_patch`: Kubernetes' strategic merge patch;
* :func:`apply_patch`: dispatch on a PATCH content type;
* :func:`server_side_apply` and :func:`update_managed_fields`: ``metadata.managedFields`` and
  ``application/apply-patch+yaml``.

Pure data: no I/O, nothing imported from procorch outside :mod:`procorch.api`.
"""

from procorch.api.patch.jsonpatch import json_patch
from procorch.api.patch.managed import (
    LAST_APPLIED_ANNOTATION,
    decode_apply_body,
    server_side_apply,
    update_managed_fields,
)
from procorch.api.patch.merge import json_merge_patch
from procorch.api.patch.strategic import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    STRATEGIC_PATCH,
    apply_patch,
    strategic_merge_patch,
)

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "LAST_APPLIED_ANNOTATION",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_PATCH",
    "apply_patch",
    "decode_apply_body",
    "json_merge_patch",
    "json_patch",
    "server_side_apply",
    "strategic_merge_patch",
    "update_managed_fields",
]
