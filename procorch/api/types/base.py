"""Shared building blocks of the type models: the model base class, ObjectMeta, selectors.

Conventions for every model in :mod:`procorch.api.types`:

* Field names are the JSON names (camelCase); no aliases.
* Every model derives from :class:`K8sModel`: unknown fields are refused (``extra="forbid"``;
  the API server turns those errors into ``fieldValidation`` handling) and types are strict
  (``"3"`` is not an int), as Go's JSON decoding is.
* Optional fields default to ``None`` and accept ``null``. Go's decoder never refuses a
  missing field, so fields of the kind models are optional even where Kubernetes requires a
  value; :mod:`procorch.api.validation` reports those as ``Required value``.
* Scalars use the aliases below (``Int32``, ``IntOrString``, ``Quantity``, ``Time``, ``Bytes``),
  which refuse exactly what Go's decoding of the Kubernetes type refuses.
* Top-level kinds derive from :class:`K8sObject` (``apiVersion``, ``kind``, ``metadata``).
* List and patch semantics are declared with the markers of :mod:`procorch.api.schema`.
* Models validate shape only; semantic rules (names, ranges, cross-field checks) live in
  :mod:`procorch.api.validation`, defaults in :mod:`procorch.api.defaults`.

Pure data.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from procorch.api.quantity import parse_quantity
from procorch.api.schema import Atomic, ListMap, ListSet


class K8sModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# Scalar aliases, named as in Kubernetes. Each checks only what Go's JSON decoding of the
# corresponding Go type would refuse (range of an int32, a malformed quantity, timestamp or
# base64 string); everything else is left to procorch.api.validation.

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


def _int_or_string(value: object) -> int | str:
    # bool is an int subclass in Python but a JSON boolean never decodes into IntOrString.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("int_or_string_type", "must be an integer or a string")
    if isinstance(value, int) and not INT32_MIN <= value <= INT32_MAX:
        raise PydanticCustomError("int_or_string_range", "must be an integer that fits in 32 bits")
    return value


IntOrString = Annotated[int | str, PlainValidator(_int_or_string, json_schema_input_type=int | str)]


def _quantity(value: object) -> str | int | float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PydanticCustomError("quantity_type", "must be a quantity (a string or a number)")
    try:
        parse_quantity(value)
    except ValueError as exc:
        # Kubernetes' own wording ("quantities must match the regular expression ...").
        raise PydanticCustomError("quantity_format", "{error}", {"error": str(exc)}) from None
    return value


# The value is kept as written; procorch.api.quantity parses and canonicalises it.
Quantity = Annotated[
    str | int | float, PlainValidator(_quantity, json_schema_input_type=str | int | float)
]

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: str) -> str:
    if not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            "time_format", "must be an RFC 3339 timestamp such as 2006-01-02T15:04:05Z"
        )
    return value


# metav1.MicroTime is stricter in Go (exactly six fractional digits); any RFC 3339 timestamp
# is accepted for both, because clients (the Python client among them) drop a zero fraction.
Time = Annotated[str, AfterValidator(_rfc3339)]  # e.g. "2026-11-25T18:19:56Z"
MicroTime = Annotated[str, AfterValidator(_rfc3339)]  # e.g. "2026-11-25T18:19:56.123456Z"

_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _base64(value: str) -> str:
    # Go's encoding/json decodes []byte with the padded standard alphabet and skips newlines.
    text = value.replace("\r", "").replace("\n", "")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if c not in _BASE64_ALPHABET), len(text))
        raise PydanticCustomError(
            "base64_format", "illegal base64 data at input byte {byte}", {"byte": bad}
        ) from None
    return value


Bytes = Annotated[str, AfterValidator(_base64)]  # a Go []byte: base64 text in JSON

StringMap = dict[str, str]
AtomicStringMap = Annotated[dict[str, str], Atomic()]  # +mapType=atomic
FreeForm = dict[str, Any]
ResourceList = dict[str, Quantity]  # resource name -> quantity


class OwnerReference(K8sModel):  # +structType=atomic
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ManagedFieldsEntry(K8sModel):
    manager: str | None = None
    operation: str | None = None
    apiVersion: str | None = None
    time: Time | None = None
    fieldsType: str | None = None
    fieldsV1: FreeForm | None = None
    subresource: str | None = None


class ObjectMeta(K8sModel):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    selfLink: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: Int64 | None = None
    creationTimestamp: Time | None = None
    deletionTimestamp: Time | None = None
    deletionGracePeriodSeconds: Int64 | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    ownerReferences: Annotated[list[Annotated[OwnerReference, Atomic()]] | None, ListMap("uid")] = (
        None
    )
    finalizers: Annotated[list[str] | None, ListSet()] = None
    managedFields: list[ManagedFieldsEntry] | None = None


class LabelSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: list[str] | None = None  # +listType=atomic


class LabelSelector(K8sModel):
    matchLabels: StringMap | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None


# metav1.LabelSelector is +structType=atomic wherever it appears.
LabelSelectorAtomic = Annotated[LabelSelector, Atomic()]


class Condition(K8sModel):
    """metav1.Condition (used by newer APIs)."""

    type: str
    status: str
    observedGeneration: Int64 | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class TypedLocalObjectReference(K8sModel):
    apiGroup: str | None = None
    kind: str
    name: str


class ObjectReference(K8sModel):
    apiVersion: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    fieldPath: str | None = None


class LocalObjectReference(K8sModel):
    name: str | None = None


# ObjectReference, LocalObjectReference and TypedLocalObjectReference are +structType=atomic:
# server-side apply replaces them whole.
ObjectReferenceAtomic = Annotated[ObjectReference, Atomic()]
LocalObjectReferenceAtomic = Annotated[LocalObjectReference, Atomic()]
TypedLocalObjectReferenceAtomic = Annotated[TypedLocalObjectReference, Atomic()]


class K8sObject(K8sModel):
    """What every top-level kind has: TypeMeta (``apiVersion``, ``kind``) and ``metadata``."""

    apiVersion: str | None = None
    kind: str | None = None
    metadata: ObjectMeta | None = None
