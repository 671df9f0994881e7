"""RFC 6902 JSON patch (``application/json-patch+json``), as ``kubectl rollout undo`` sends.

Errors map onto what the Kubernetes API server answers:

* a body that is not a list of operation objects, an unknown ``op``, or an operation missing a
  member it needs: 400 ``BadRequest`` (the apiserver's decode step);
* an operation that does not apply to the object (a ``test`` that fails, a path that does not
  exist, an index out of range): 422 ``Invalid``, as the apiserver answers every failed
  ``Apply``. Kubernetes' own message there is the generic "the server rejected our request due
  to an error in our request"; procorch appends the reason, worded as the json-patch library
  the apiserver uses words it (``testing value /data/a failed: test failed``), so the user can
  act on it;
* more than 10000 operations: 413 ``RequestEntityTooLarge``, Kubernetes' limit.

Pure data; inputs are never mutated.
"""

from __future__ import annotations

import copy
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
    result: Any = copy.deepcopy(original)
    for op in operations:
        # One operation at a time, so a failure can be explained in terms of that operation.
        try:
            result = jsonpatch.JsonPatch([op]).apply(result, in_place=True)
        except jsonpatch.InvalidJsonPatch as exc:
            raise errors.BadRequest(str(exc)) from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise PatchNotApplicable(f"{_REJECTED}: {_explain(result, op)}") from exc
    if not isinstance(result, dict):
        raise PatchNotApplicable(f"{_REJECTED}: the patched document is not an object")
    return result


_REJECTED = "the server rejected our request due to an error in our request"


def _locate(doc: Any, path: str) -> tuple[Any, str] | None:
    """The container ``path`` points into and the last token, or None if it is missing."""
    if not path.startswith("/"):
        return None
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
        if not isinstance(node, (dict, list)):
            return None
    return node, tokens[-1]


def _explain(doc: Any, op: dict[str, Any]) -> str:
    """Why ``op`` does not apply to ``doc``, in the words of the Go json-patch library (v4)
    that kube-apiserver applies JSON patches with."""
    kind, path = op["op"], op["path"]
    if kind in ("move", "copy"):
        source = op["from"]
        where = _locate(doc, source)
        if where is None:
            return f"{kind} operation does not apply: doc is missing from path: {source}: missing value"
        holder, name = where
        if kind == "move" and isinstance(holder, dict) and name not in holder:
            return (
                f"error in move for path: '{name}': Unable to remove nonexistent key: {name}: "
                "missing value"
            )
        return (
            f"{kind} operation does not apply: doc is missing destination path: {path}: "
            "missing value"
        )
    found = _locate(doc, path)
    if found is None:
        return {
            "add": f'add operation does not apply: doc is missing path: "{path}": missing value',
            "remove": f'remove operation does not apply: doc is missing path: "{path}": '
            "missing value",
            "replace": f"replace operation does not apply: doc is missing path: {path}: "
            "missing value",
        }.get(kind, f"test operation does not apply: is missing path: {path}: missing value")
    container, key = found
    if kind == "test":
        return f"testing value {path} failed: test failed"
    if kind == "remove" and isinstance(container, dict):
        return f"error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
    if kind == "replace" and isinstance(container, dict):
        return f"replace operation does not apply: doc is missing key: {path}: missing value"
    if isinstance(container, list) and not key.lstrip("-").isdigit() and key != "-":
        return f"error in {kind} for path: '{path}': value was not a proper array index: '{key}'"
    return (
        f"error in {kind} for path: '{path}': Unable to access invalid index: {key}: "
        "invalid index referenced"
    )


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
