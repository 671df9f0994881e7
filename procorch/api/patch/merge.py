"""RFC 7386 JSON merge patch (``application/merge-patch+json``).

What kubectl sends for ``label``, ``annotate`` and ``scale``: objects merge key by key, ``null``
deletes a key, anything else (lists included) replaces the old value. Pure data; inputs are never
mutated.
"""

from __future__ import annotations

import copy
from typing import Any

from procorch.api import errors


def json_merge_patch(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply ``patch`` to ``original`` and return the result as a new object.

    A patch that is not a JSON object would replace the whole document, which can never be a
    Kubernetes object, so it is refused with 400 as Kubernetes refuses a ``null`` patch.
    """
    if not isinstance(patch, dict):
        raise errors.BadRequest("invalid JSON Patch: a merge patch must be a JSON object")
    return _merge(original, patch)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result
