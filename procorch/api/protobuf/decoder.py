"""Turns a Kubernetes protobuf request body into the JSON-shaped object the API works with.

The body is ``b"k8s\\x00"`` followed by a ``runtime.Unknown`` envelope: ``1`` typeMeta
(``1`` apiVersion, ``2`` kind), ``2`` raw (the object itself), ``3`` contentEncoding,
``4`` contentType. The object is walked with the field tables of :mod:`.schema`, giving the
dict its JSON encoding would give, except that plain (non-pointer) zero values are left out:
protobuf cannot tell them from unset ones, so ``generation: 0``, ``creationTimestamp: null``
or ``status: {}`` never appear, while a pointer's ``replicas: 0`` does.

Errors: a body that is not well-formed protobuf, or whose values do not fit the schema, is a
:class:`~procorch.api.errors.BadRequest`; a well-formed envelope holding a kind or encoding we
cannot decode is :class:`~procorch.api.errors.UnsupportedMediaType`.

Pure data.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from procorch.api.errors import BadRequest, UnsupportedMediaType
from procorch.api.protobuf import tables_core, tables_groups, tables_pod, tables_volumes
from procorch.api.protobuf.schema import Field, compile_tables
from procorch.api.protobuf.wire import (
    LENGTH_DELIMITED,
    VARINT,
    WIRE_TYPE_NAMES,
    WireError,
    fields,
    packed_varints,
    to_int64,
)

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

MESSAGES = compile_tables(
    tables_groups.TABLES, tables_core.TABLES, tables_pod.TABLES, tables_volumes.TABLES
)

# (apiVersion, kind) -> the message that encodes it.
KINDS: dict[tuple[str, str], str] = {
    **{
        ("v1", kind): f"core.{kind}"
        for kind in (
            "Namespace",
            "Pod",
            "Node",
            "ConfigMap",
            "Secret",
            "Service",
            "Endpoints",
            "Event",
            "ServiceAccount",
            "PersistentVolumeClaim",
            "ResourceQuota",
        )
    },
    ("apps/v1", "Deployment"): "apps.Deployment",
    ("apps/v1", "ReplicaSet"): "apps.ReplicaSet",
    ("apps/v1", "DaemonSet"): "apps.DaemonSet",
    ("batch/v1", "Job"): "batch.Job",
    ("batch/v1", "CronJob"): "batch.CronJob",
    ("networking.k8s.io/v1", "Ingress"): "networking.Ingress",
    ("networking.k8s.io/v1", "IngressClass"): "networking.IngressClass",
    ("discovery.k8s.io/v1", "EndpointSlice"): "discovery.EndpointSlice",
    ("coordination.k8s.io/v1", "Lease"): "coordination.Lease",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscalingv1.HorizontalPodAutoscaler",
    ("autoscaling/v1", "Scale"): "autoscalingv1.Scale",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscalingv2.HorizontalPodAutoscaler",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.ClusterRoleBinding",
    ("authentication.k8s.io/v1", "TokenRequest"): "authentication.TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authentication.SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "authorization.SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "authorization.SelfSubjectRulesReview",
    ("policy/v1", "PodDisruptionBudget"): "policy.PodDisruptionBudget",
    ("policy/v1", "Eviction"): "policy.Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.PriorityClass",
}

_NUMERIC = frozenset({"int", "bool"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Malformed(Exception):
    """A decoding problem, with the JSON path where it was found."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '<object>'}: {problem}")


def decode(body: bytes) -> dict[str, Any]:
    """Decode one protobuf-encoded object into its JSON form (``apiVersion``, ``kind``, ...)."""
    if not body.startswith(MAGIC):
        raise BadRequest(
            "the request body is not a Kubernetes protobuf object: it does not start with "
            'the "k8s\\x00" prefix'
        )
    try:
        api_version, kind, raw = _unwrap(body[len(MAGIC) :])
    except (WireError, _Malformed) as err:
        raise BadRequest(f"malformed protobuf envelope (runtime.Unknown): {err}") from err
    message = KINDS.get((api_version, kind))
    if message is None and kind == "DeleteOptions":
        # Registered in every group version (metav1.AddToGroupVersion): a typed client's
        # DELETE body says its own group version.
        message = "meta.DeleteOptions"
    if message is None:
        raise UnsupportedMediaType(
            f'cannot decode kind "{kind}" in version "{api_version}" from '
            f"{PROTOBUF_CONTENT_TYPE}; send it as application/json"
        )
    try:
        obj = _message(raw, message, "")
    except _Malformed as err:
        version = api_version.rpartition("/")[2]
        raise BadRequest(
            f'{kind} in version "{version}" cannot be handled as a {kind}: '
            f"malformed protobuf at {err}"
        ) from err
    return {"apiVersion": api_version, "kind": kind, **obj}


def _unwrap(envelope: bytes) -> tuple[str, str, bytes]:
    api_version = kind = encoding = content_type = ""
    raw = b""
    for number, wire_type, value in fields(envelope):
        if number == 1:
            type_meta = _expect_bytes(value, wire_type, "typeMeta")
            for sub, sub_wire, sub_value in fields(type_meta):
                if sub == 1:
                    api_version = _text(_expect_bytes(sub_value, sub_wire, "apiVersion"), "")
                elif sub == 2:
                    kind = _text(_expect_bytes(sub_value, sub_wire, "kind"), "")
        elif number == 2:
            raw = _expect_bytes(value, wire_type, "raw")
        elif number == 3:
            encoding = _text(_expect_bytes(value, wire_type, "contentEncoding"), "")
        elif number == 4:
            content_type = _text(_expect_bytes(value, wire_type, "contentType"), "")
    if not api_version or not kind:
        raise _Malformed("typeMeta", "apiVersion and kind are required")
    if encoding:
        raise UnsupportedMediaType(f'unsupported protobuf content encoding "{encoding}"')
    if content_type and content_type != PROTOBUF_CONTENT_TYPE:
        raise UnsupportedMediaType(f'unsupported protobuf content type "{content_type}"')
    return api_version, kind, raw


def _expect_bytes(value: int | bytes, wire_type: int, path: str) -> bytes:
    if wire_type != LENGTH_DELIMITED or not isinstance(value, bytes):
        raise _Malformed(path, f"expected length-delimited, got {WIRE_TYPE_NAMES[wire_type]}")
    return value


def _text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Malformed(path, "string is not valid UTF-8") from err


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _message(data: bytes, message: str, path: str) -> dict[str, Any]:
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    try:
        for number, wire_type, value in fields(data):
            field = table.get(number)
            if field is None:
                # Unknown fields are skipped, as the generated Go unmarshallers do: newer
                # clients may send fields this table does not know yet.
                continue
            where = path if field.inline else _join(path, field.name)
            if field.inline:
                out.update(_message(_expect_bytes(value, wire_type, where), field.type, path))
            elif field.map:
                key, item = _map_entry(_expect_bytes(value, wire_type, where), field, where)
                out.setdefault(field.name, {})[key] = item
            elif field.repeated:
                items = out.setdefault(field.name, [])
                if field.type in _NUMERIC and isinstance(value, bytes):
                    # proto2 writers may pack repeated numbers; accept both encodings.
                    items.extend(_scalar(field, VARINT, v, where) for v in packed_varints(value))
                else:
                    items.append(_value(field, wire_type, value, f"{where}[{len(items)}]"))
            else:
                item = _value(field, wire_type, value, where)
                if item is None or (not field.pointer and _is_zero(field, item)):
                    out.pop(field.name, None)
                else:
                    out[field.name] = item
    except WireError as err:
        raise _Malformed(path, str(err)) from err
    return out


def _is_zero(field: Field, value: Any) -> bool:
    """Whether a plain (non-pointer) Go field holds its zero value, which JSON would omit."""
    if field.type == "Quantity":
        return value in ("", "0")
    return value == {} or value == "" or (value == 0 and not isinstance(value, str))


def _zero_value(field: Field) -> Any:
    if field.type == "int":
        return 0
    if field.type == "bool":
        return False
    if field.type in ("str", "bytes"):
        return ""
    if field.type == "Quantity":
        return "0"
    if field.type == "IntOrString":
        return 0
    return {} if field.is_message else None


def _map_entry(data: bytes, field: Field, path: str) -> tuple[str, Any]:
    key = ""
    item: Any = None
    has_value = False
    try:
        for number, wire_type, value in fields(data):
            if number == 1:
                key = _text(_expect_bytes(value, wire_type, path), path)
            elif number == 2:
                item = _value(field, wire_type, value, f"{path}[{key}]")
                has_value = True
    except WireError as err:
        raise _Malformed(path, str(err)) from err
    if not has_value:
        # Writers leave out an empty value (gogo does for bytes): it is the zero value.
        item = _zero_value(field)
    return key, item


def _value(field: Field, wire_type: int, value: int | bytes, path: str) -> Any:
    if field.type in _NUMERIC:
        return _scalar(field, wire_type, value, path)
    data = _expect_bytes(value, wire_type, path)
    if field.is_message:
        return _message(data, field.type, path)
    if field.type == "str":
        return _text(data, path)
    if field.type == "bytes":
        return base64.b64encode(data).decode("ascii")
    return _special(field.type, data, path)


def _scalar(field: Field, wire_type: int, value: int | bytes, path: str) -> int | bool:
    if wire_type != VARINT or not isinstance(value, int):
        raise _Malformed(path, f"expected varint, got {WIRE_TYPE_NAMES[wire_type]}")
    if field.type == "bool":
        return value != 0
    return to_int64(value)


def _special(type_: str, data: bytes, path: str) -> Any:
    parts: dict[int, int | bytes] = {}
    try:
        for number, _wire_type, value in fields(data):
            parts[number] = value
    except WireError as err:
        raise _Malformed(path, str(err)) from err
    if type_ in ("Time", "MicroTime"):
        # An empty message is Go's zero time, which JSON renders as null.
        if not data:
            return None
        return _timestamp(parts, micro=type_ == "MicroTime", path=path)
    if type_ == "Quantity":
        return _text(_part_bytes(parts, 1, path), path)
    if type_ == "IntOrString":
        if _part_int(parts, 1, path) == 1:
            return _text(_part_bytes(parts, 3, path), path)
        return _part_int(parts, 2, path)
    # Raw: RawExtension and FieldsV1 both carry JSON bytes in field 1.
    raw = _part_bytes(parts, 1, path)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise _Malformed(path, f"embedded JSON does not parse: {err}") from err


def _part_int(parts: dict[int, int | bytes], number: int, path: str) -> int:
    value = parts.get(number, 0)
    if not isinstance(value, int):
        raise _Malformed(path, f"field {number}: expected varint")
    return to_int64(value)


def _part_bytes(parts: dict[int, int | bytes], number: int, path: str) -> bytes:
    value = parts.get(number, b"")
    if not isinstance(value, bytes):
        raise _Malformed(path, f"field {number}: expected length-delimited")
    return value


def _timestamp(parts: dict[int, int | bytes], *, micro: bool, path: str) -> str:
    seconds = _part_int(parts, 1, path)
    nanos = _part_int(parts, 2, path)
    if not 0 <= nanos < 1_000_000_000:
        raise _Malformed(path, f"timestamp nanos {nanos} is out of range")
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError as err:
        raise _Malformed(path, f"timestamp {seconds} is out of range") from err
    # Built by hand: strftime does not zero-pad years before 1000 on every platform.
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if micro:
        # MicroTime keeps microseconds (Go truncates the nanoseconds); Time keeps seconds only.
        text += f".{nanos // 1000:06d}"
    return text + "Z"
