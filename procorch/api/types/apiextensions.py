"""apiextensions.k8s.io/v1 kind: CustomResourceDefinition.

A version's ``openAPIV3Schema`` is free-form here: it is checked as a structural schema by
:mod:`procorch.api.crd`, where its meaning lives. Pure data.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from procorch.api.schema import ListMap
from procorch.api.types.base import FreeForm, Int32, K8sModel, K8sObject, Time


class CustomResourceDefinitionNames(K8sModel):
    plural: str | None = None
    singular: str | None = None
    shortNames: list[str] | None = None
    kind: str | None = None
    listKind: str | None = None
    categories: list[str] | None = None


class CustomResourceValidation(K8sModel):
    openAPIV3Schema: FreeForm | None = None


class CustomResourceSubresourceScale(K8sModel):
    specReplicasPath: str | None = None
    statusReplicasPath: str | None = None
    labelSelectorPath: str | None = None


class CustomResourceSubresources(K8sModel):
    status: FreeForm | None = None
    scale: CustomResourceSubresourceScale | None = None


class CustomResourceColumnDefinition(K8sModel):
    name: str | None = None
    type: str | None = None
    format: str | None = None
    description: str | None = None
    priority: Int32 | None = None
    jsonPath: str | None = None


class SelectableField(K8sModel):
    jsonPath: str | None = None


class CustomResourceDefinitionVersion(K8sModel):
    name: str | None = None
    served: bool | None = None
    storage: bool | None = None
    deprecated: bool | None = None
    deprecationWarning: str | None = None
    # pydantic reserves "schema" on models: the JSON name is the field's alias.
    schema_: CustomResourceValidation | None = Field(default=None, alias="schema")
    subresources: CustomResourceSubresources | None = None
    additionalPrinterColumns: list[CustomResourceColumnDefinition] | None = None
    selectableFields: list[SelectableField] | None = None


class WebhookClientConfig(K8sModel):
    url: str | None = None
    service: FreeForm | None = None
    caBundle: str | None = None


class WebhookConversion(K8sModel):
    clientConfig: WebhookClientConfig | None = None
    conversionReviewVersions: list[str] | None = None


class CustomResourceConversion(K8sModel):
    strategy: str | None = None
    webhook: WebhookConversion | None = None


class CustomResourceDefinitionSpec(K8sModel):
    group: str | None = None
    names: CustomResourceDefinitionNames | None = None
    scope: str | None = None
    versions: Annotated[list[CustomResourceDefinitionVersion] | None, ListMap("name")] = None
    conversion: CustomResourceConversion | None = None
    preserveUnknownFields: bool | None = None


class CustomResourceDefinitionCondition(K8sModel):
    type: str | None = None
    status: str | None = None
    lastTransitionTime: Time | None = None
    reason: str | None = None
    message: str | None = None


class CustomResourceDefinitionStatus(K8sModel):
    conditions: Annotated[list[CustomResourceDefinitionCondition] | None, ListMap("type")] = None
    acceptedNames: CustomResourceDefinitionNames | None = None
    storedVersions: list[str] | None = None


class CustomResourceDefinition(K8sObject):
    spec: CustomResourceDefinitionSpec | None = None
    status: CustomResourceDefinitionStatus | None = None
