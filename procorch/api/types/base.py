"""Shared building blocks of the type models: the model base class, ObjectMeta, selectors.

Conventions for every model in :mod:`procorch.api.types`:

* Field names are the JSON names (camelCase); no aliases.
* Every model derives from :class:`K8sModel`: unknown fields are refused (``extra="forbid"``;
  the API server turns those errors into ``fieldValidation`` handling) and types are strict
  (``"3"`` is not an int), as Go's JSON decoding is.
* Optional fields default to ``None`` and accept ``null``.
* List and patch semantics are declared with the markers of :mod:`procorch.api.schema`.
* Models validate shape only; semantic rules (names, ranges, cross-field checks) live in
  :mod:`procorch.api.validation`, defaults in :mod:`procorch.api.defaults`.

Pure data.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from procorch.api.schema import Atomic, ListMap, ListSet


class K8sModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# Scalar aliases, named as in Kubernetes.
IntOrString = int | str
Quantity = str | int | float
Time = str  # RFC 3339, e.g. "2026-11-25T18:19:56Z"
MicroTime = str  # RFC 3339 with microseconds
StringMap = dict[str, str]
FreeForm = dict[str, Any]


class OwnerReference(K8sModel):
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
    generation: int | None = None
    creationTimestamp: Time | None = None
    deletionTimestamp: Time | None = None
    deletionGracePeriodSeconds: int | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    ownerReferences: Annotated[list[OwnerReference] | None, ListMap("uid")] = None
    finalizers: Annotated[list[str] | None, ListSet()] = None
    managedFields: list[ManagedFieldsEntry] | None = None


class LabelSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: Annotated[list[str] | None, ListSet(merge=False)] = None


class LabelSelector(K8sModel):
    matchLabels: StringMap | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None


LabelSelectorAtomic = Annotated[LabelSelector, Atomic()]


class Condition(K8sModel):
    """metav1.Condition (used by newer APIs)."""

    type: str
    status: str
    observedGeneration: int | None = None
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
