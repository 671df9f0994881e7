"""API errors: a small hierarchy mapped one-to-one onto Kubernetes ``Status`` reasons.

Every error the API can return is an :class:`ApiError`; :meth:`ApiError.status` renders the
``Status`` body that kubectl and client libraries parse (``kind: Status``, ``reason``, ``code``,
``details``). Field-level problems are :class:`Cause` values, formatted as Kubernetes formats
them (``spec.replicas: Invalid value: "three": must be an integer``).

Pure data: no I/O, no imports from the rest of procorch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field-level problem, as in ``Status.details.causes``."""

    reason: str
    message: str
    field: str = ""

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


# Constructors for causes, named after Kubernetes' field.Error types.


def required(path: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", "Required value" + (f": {detail}" if detail else ""), path)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}", path)


def type_invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueTypeInvalid", f"Invalid value: {_quote(value)}: {detail}", path)


def not_supported(path: str, value: Any, valid: list[str]) -> Cause:
    options = ", ".join(json.dumps(v) for v in valid)
    return Cause(
        "FieldValueNotSupported",
        f"Unsupported value: {_quote(value)}: supported values: {options}",
        path,
    )


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_quote(value)}", path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def too_long(path: str, value: Any, limit: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: may not be more than {limit} bytes", path)


def unknown_field(path: str) -> Cause:
    return Cause("FieldValueInvalid", f'unknown field "{path}"', path)


class ApiError(Exception):
    """Base of every error the API returns; ``code`` and ``reason`` follow Kubernetes."""

    code = 500
    reason = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self._has_details = details is not None
        """``details={}`` is sent as ``"details": {}``, as kube-apiserver sends it for an unknown
        path (kubectl debug reads it); no details at all, as there, none."""
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``Status`` body, its fields in kube-apiserver's order (Go's struct order)."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details or self._has_details:
            body["details"] = status_details(self.details)
        body["code"] = self.code
        return body


_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def status_details(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` as Go's ``StatusDetails`` encodes it: its fields in struct order, empty
    ones left out (all are ``omitempty``), each cause's fields likewise."""
    out = {k: details[k] for k in _DETAILS_ORDER if details.get(k) not in (None, "", [], 0)}
    if isinstance(out.get("causes"), list):
        out["causes"] = [
            {k: c[k] for k in _CAUSE_ORDER if c.get(k)} if isinstance(c, dict) else c
            for c in out["causes"]
        ]
    out.update((k, v) for k, v in details.items() if k not in _DETAILS_ORDER)
    return out


def _details(kind: str, name: str, group: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    @classmethod
    def of(cls, resource: str, name: str, *, group: str = "") -> NotFound:
        return cls(
            f'{_qualified(resource, group)} "{name}" not found',
            details=_details(resource, name, group),
        )


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def of(cls, resource: str, name: str, *, group: str = "") -> AlreadyExists:
        return cls(
            f'{_qualified(resource, group)} "{name}" already exists',
            details=_details(resource, name, group),
        )


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def modified(cls, resource: str, name: str, *, group: str = "") -> Conflict:
        return cls(
            f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": the '
            "object has been modified; please apply your changes to the latest version and "
            "try again",
            details=_details(resource, name, group),
        )


class Gone(ApiError):
    """410: a watch or list asked for a resourceVersion older than the kept history."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    """422: the object failed validation; every problem is listed as a cause."""

    code = 422
    reason = "Invalid"

    def __init__(self, *, kind: str, name: str, causes: list[Cause], group: str = "") -> None:
        self.kind = kind
        self.name = name
        self.causes = list(causes)
        rendered = [c.render() for c in self.causes]
        summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
        details: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "causes": [c.to_dict() for c in self.causes],
        }
        if group:
            details["group"] = group
        # Kubernetes' NewInvalid names the group-qualified kind (GroupKind.String()):
        # ``Deployment.apps "web" is invalid: ...``, but ``Pod "web" is invalid: ...``.
        qualified = f"{kind}.{group}" if group else kind
        super().__init__(f'{qualified} "{name}" is invalid: {summary}', details=details)


class TooManyRequests(ApiError):
    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class Timeout(ApiError):
    code = 504
    reason = "Timeout"


def from_status(body: dict[str, Any], *, code: int) -> ApiError:
    """Rebuild an error from a ``Status`` body (used by clients)."""
    reason = body.get("reason") or ""
    message = body.get("message") or f"the server returned {code}"
    details = body.get("details") or {}
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        AlreadyExists,
        Conflict,
        Gone,
        RequestEntityTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        ServiceUnavailable,
        Timeout,
    ):
        if cls.reason == reason and cls.code == code:
            return cls(message, details=details)
    if reason == "Invalid" or code == 422:
        causes = [
            Cause(c.get("reason", ""), c.get("message", ""), c.get("field", ""))
            for c in details.get("causes") or []
        ]
        invalid = Invalid(
            kind=details.get("kind", ""),
            name=details.get("name", ""),
            causes=causes,
            group=details.get("group", ""),
        )
        invalid.message = message
        return invalid
    generic = ApiError(message, details=details)
    generic.code = code
    generic.reason = reason or "InternalError"
    return generic


@dataclass
class Warnings:
    """Collects Kubernetes ``Warning:`` headers for one request (e.g. unknown fields)."""

    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text not in self.items:
            self.items.append(text)
