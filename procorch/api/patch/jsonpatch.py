"""RFC 6902 JSON patch (``application/json-patch+json``), as ``kubectl rollout undo`` sends.

Errors map onto what the Kubernetes API server answers:

* a body that is not a list of operation objects, an unknown ``op``, or an operation missing a
  member it needs: 400 ``BadRequest`` (the apiserver's decode step);
* an operation that does not apply to the object (a ``test`` that fails, a path that does not
  exist, an index out of range): 422 ``Invalid``, as the apiserver answers every failed
  ``Apply``. Kubernetes' own message there is the generic "the server rejected our request due
  to an error in our request"; procorch appends the reason so the user can act on it;
* more than 10000 operations: 413 ``RequestEntityTooLarge``, Kubernetes' limit.

Pure data; inputs are never mutated.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from procorch.api import errors

MAX_OPERATIONS = 10000

_OPS = {"add", "remove", "replace", "move", "copy", "test"}


class PatchNotApplicable(errors.ApiError):
    """422: the patch is well formed but cannot be applied to the current object."""

    code = 422
    reason = "Invalid"


class RequestEntityTooLarge(errors.ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


def json_patch(original: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply the JSON patch ``operations`` to ``original``; returns a new object."""
    _check_shape(operations)
    if len(operations) > MAX_OPERATIONS:
        raise RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, "
            f"got {len(operations)}"
        )
    try:
        result = jsonpatch.JsonPatch(operations).apply(original, in_place=False)
    except jsonpatch.InvalidJsonPatch as exc:
        raise errors.BadRequest(str(exc)) from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchNotApplicable(
            f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    if not isinstance(result, dict):
        raise PatchNotApplicable(
            "the server rejected our request due to an error in our request: "
            "the patched document is not an object"
        )
    return result


def _check_shape(operations: Any) -> None:
    """Refuse malformed patches up front, with the 400 the apiserver's decoder gives."""
    if not isinstance(operations, list):
        raise errors.BadRequest(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    for index, op in enumerate(operations):
        if not isinstance(op, dict):
            raise errors.BadRequest(f"invalid JSON patch: operation {index} is not an object")
        kind = op.get("op")
        if kind not in _OPS:
            raise errors.BadRequest(f"Unexpected kind: {kind}")
        if not isinstance(op.get("path"), str):
            raise errors.BadRequest(f"invalid JSON patch: operation {index} has no path")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise errors.BadRequest(f"invalid JSON patch: {kind} operation {index} has no value")
        if kind in ("move", "copy") and not isinstance(op.get("from"), str):
            raise errors.BadRequest(f"invalid JSON patch: {kind} operation {index} has no from")
